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
 *   tly_zip_names_agree(fd, max_entries, why, n)
 *       1: every central directory entry's local header carries the same
 *          name bytes; 0: they do not, or the tables cannot be read as a
 *          zip (why says which entry, NUL-terminated in n bytes); -1: a
 *          read error (errno set).  At most max_entries are compared; the
 *          caller's bound on entries rejects a larger zip anyway.
 */
#ifndef TLY_ZIPCHECK_H
#define TLY_ZIPCHECK_H

#include <stddef.h>
#include <stdint.h>

int tly_zip_names_agree(int fd, int64_t max_entries, char *why, size_t n);

#endif
