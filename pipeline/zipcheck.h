/*
 * zipcheck.h — a zip's two tables of contents agree.
 *
 * A zip names each entry twice: in its local header, before the data, and
 * in the central directory at the end.  libarchive reads the central
 * directory to find the entries but takes each name from the local header,
 * and checks no name against the other; unzip, Python and most tools list
 * the central directory's.  An entry named "README.txt" in one and
 * "runs.csv" in the other would load data that every listing hides
 * (inputs.md "Bundles": a corrupt bundle is rejected whole).
 *
 * The directory is found and walked as libarchive's seekable reader does,
 * so the check covers every entry it will read: the last end record that
 * can end a directory (bytes may follow it), offsets shifted by any bytes
 * in front of the zip, and entries by the directory's bytes, not by the
 * count the end record states.
 *
 * And libarchive may still read another directory than this one (end
 * records can be crafted to differ between readers).  So the names it
 * yields are matched, one by one, against the checked directory's, in
 * local header order, which is the order its seekable reader yields:
 *
 *   tly_zip_names_read(fd, max_entries, z, why, n)
 *       1: the directory read into z (its first max_entries: the caller
 *          counts what libarchive yields against the same bound), every
 *          entry's local header carrying its name bytes, no two entries
 *          sharing a header, and no local header's signature in the bytes
 *          in front of the first entry (zips joined end to end); 0: not so (why says which entry, NUL-terminated in
 *          n bytes); -1: an error (errno set, ENOMEM included).  z is the
 *          caller's to release after 1.
 *   tly_zip_names_next(z, name, why, n)
 *       1 when 'name', the next entry libarchive yields, is the next in z
 *       (names with bytes past ASCII on both sides, converted by libarchive
 *       from the zip's charset, are taken as equal); else 0 with why.
 *   tly_zip_names_done(z, why, n)
 *       at libarchive's end: 1 when every entry of z was yielded.
 *   tly_zip_names_release(z)
 */
#ifndef TLY_ZIPCHECK_H
#define TLY_ZIPCHECK_H

#include <stddef.h>
#include <stdint.h>

struct tly_zip_names {
    struct named *entries;      /* sorted by local header offset */
    size_t n, next;
};

int tly_zip_names_read(int fd, int64_t max_entries, struct tly_zip_names *z, char *why, size_t n);
int tly_zip_names_next(struct tly_zip_names *z, const char *name, char *why, size_t n);
int tly_zip_names_done(const struct tly_zip_names *z, char *why, size_t n);
void tly_zip_names_release(struct tly_zip_names *z);

#endif
