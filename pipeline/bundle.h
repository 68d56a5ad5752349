/*
 * bundle.h — reading a bundle entry by entry (spec inputs.md "Bundles").
 *
 * A bundle is a directory, a .tar / .tar.gz / .tgz / .tar.zst / .zip archive,
 * or a single NAME.csv / NAME.csv.gz.  Archives are read with libarchive in
 * memory, entry by entry, never extracted; only the tar and zip formats and
 * the gzip and zstd filters are enabled.  Directories are walked in sorted
 * path order.  The reader enforces everything that rejects a bundle whole
 * while reading (bad or truncated archive, unsupported format, unsafe path,
 * link or device entry, duplicate path, size bounds counted as bytes are read,
 * the compression-ratio guard); the ingest stage adds no_known_file and
 * manifest_mismatch.
 *
 * Usage:
 *     struct tly_bundle *b;
 *     struct tly_bundle_entry e;
 *     tly_bundle_open(path, settings, &b, &rej);
 *     while ((rc = tly_bundle_next(b, &e, &rej)) == 1) {
 *         if (e.type == TLY_FILE_OTHER) { note skipped e.path; continue; }
 *         while ((n = tly_bundle_read(b, buf, sizeof buf, &rej)) > 0) parse(buf, n);
 *         if (n < 0) reject bundle with rej;
 *         tly_bundle_entry_sha256(b, hex);       (of the bytes as stored)
 *     }
 *     tly_bundle_close(b);
 *
 * Errors that reject the bundle fill a struct tly_bundle_reject (reason code
 * as in outputs.md plus a detail) and return TLY_QUARANTINED (or -1 from the
 * read/next calls); I/O errors on the bundle file itself (cannot open) are
 * also bundle rejects (bad_archive), never a crash.
 *
 * Ownership: the bundle owns every string it hands out; an entry's path is
 * valid until the next tly_bundle_next().  tly_bundle_close() accepts NULL.
 */
#ifndef TLY_BUNDLE_H
#define TLY_BUNDLE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "settings.h"

enum tly_file_type {
    TLY_FILE_OTHER = 0,     /* not <type>[<suffix>].csv[.gz]: skipped and listed */
    TLY_FILE_ACCOUNTS,
    TLY_FILE_CREDITS,
    TLY_FILE_RUNS,
    TLY_FILE_DEPLOYMENTS,
    TLY_FILE_MANIFEST,
};

struct tly_bundle_entry {
    const char *path;       /* path inside the bundle ("runs-0001.csv.gz", "eu/runs.csv") */
    enum tly_file_type type;
    int gzipped;            /* .csv.gz: tly_bundle_read() returns the gunzipped bytes */
};

struct tly_bundle_reject {
    char code[32];          /* bad_archive unsupported_format unsafe_path link_or_device
                               duplicate_path too_large (outputs.md reject codes) */
    char detail[256];       /* names the entry where there is one */
    const char *bundle;     /* the bundle's path (set by open and identity), for
                               the I/O errors that are not rejects */
};

struct tly_bundle;

/* The type of a base name by the file-name rule, and whether it ends .csv.gz. */
enum tly_file_type tly_bundle_file_type(const char *base_name, int *gzipped);

/*
 * The bundle's identity (semantics §10 "Bundle identity"): SHA-256 of the
 * file's bytes, or for a directory of its regular files' relative paths and
 * bytes in sorted path order.  Lowercase hex into hex[65].
 * (A directory hashes, per file in strcmp order of the relative paths: the
 * path, a NUL, the 32-byte SHA-256 of the file's bytes.)
 */
int tly_bundle_identity(const char *path, char hex[65], struct tly_bundle_reject *rej);

/*
 * A file bundle whose name gives no form or file type (EXPORT.ZIP,
 * export.csv) is refused for its name alone, and renaming it is the fix.
 * So the ledger keeps such a refusal by name and content: 'key' gets the
 * SHA-256 of the base name, a NUL and the identity 'hex'.  The same file
 * sent again is already ingested (a re-run adds no reject row), and the
 * same bytes renamed are new.  1 with key set when the name is refused,
 * else 0 (the identity is the key).
 */
int tly_bundle_name_key(const char *path, const char hex[65], char key[65]);

/*
 * A bundle rejected as too_large was refused by the [ingest] bounds in
 * force, which an admin may raise for it.  So the ledger keeps such a
 * refusal by content and bounds: 'key' gets the SHA-256 of the identity
 * 'hex', a NUL and the bounds (entry, bundle and ratio bytes, entries, rows
 * per file) as text.  Sent again under the same bounds, the bundle is
 * already ingested (rejected); under other bounds it is read again.
 */
void tly_bundle_bounds_key(const struct tly_settings *s, const char hex[65], char key[65]);

/*
 * A path inside a bundle as entries and manifest rows are compared: 'name'
 * copied into 'out' (room for strlen(name) + 1) without empty and "."
 * components, so tar's "./runs.csv" is "runs.csv" and "a//b" is "a/b".
 * -1 when the name is absolute or has a ".." component.
 */
int tly_bundle_normalize_path(const char *name, char *out);

int tly_bundle_open(const char *path, const struct tly_settings *s, struct tly_bundle **out,
                    struct tly_bundle_reject *rej);
/* 1: *e is the next regular file; 0: no more entries; -1: bundle rejected (*rej). */
int tly_bundle_next(struct tly_bundle *b, struct tly_bundle_entry *e,
                    struct tly_bundle_reject *rej);
/* Bytes of the current entry's CSV text: >0 bytes, 0 at its end, -1 rejected (*rej). */
ssize_t tly_bundle_read(struct tly_bundle *b, void *buf, size_t n, struct tly_bundle_reject *rej);
/* SHA-256 (hex) of the current entry's stored bytes; valid once it was read to its end. */
void tly_bundle_entry_sha256(struct tly_bundle *b, char hex[65]);
/*
 * Why the last -1 from next/read: TLY_QUARANTINED when *rej holds a bundle
 * reject; TLY_ERR_NOMEM when memory ran out (already reported with
 * tly_error(); not the bundle's fault, so rej->code is empty and the bundle
 * must not be recorded as rejected).  TLY_OK while nothing failed.
 * tly_bundle_open() and tly_bundle_identity() return such codes directly:
 * TLY_OK, TLY_QUARANTINED, TLY_ERR_NOMEM (TLY_ERR_IO if libarchive was
 * built without its own tar, zip, gzip or zstd support).
 */
int tly_bundle_failure(const struct tly_bundle *b);
void tly_bundle_close(struct tly_bundle *b);

#endif
