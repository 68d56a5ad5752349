/*
 * runjson.h — DIR/run.json, the monitoring record of a nightly run
 * (spec outputs.md "Command line").
 *
 *   {"version", "as_of", "counts": {...}, "inputs": [{"bundle", "sha256"}],
 *    "skipped_files": ["BUNDLE: PATH"], "outputs": [{"file", "sha256"}],
 *    "stages": [{"stage", "seconds"}]}
 *
 * "skipped_files" names the files counted in counts.files_skipped, as
 * stderr does (inputs.md: skipped files are "listed in the command's
 * summary and in run.json").  "outputs" lists every other file under the
 * directory, sorted by path.
 * Built with Debian's jansson (key order preserved); SHA-256 by nettle.
 */
#ifndef TLY_RUNJSON_H
#define TLY_RUNJSON_H

#include <stdint.h>

struct tly_runjson_count {
    const char *name;
    long value;
};

struct tly_runjson_stage {
    const char *name;
    double seconds;
};

int tly_runjson_write(const char *dir, int64_t as_of,
                      const struct tly_runjson_count *counts, int ncounts,
                      char *const *bundles, char *const *bundle_sha, int nbundles,
                      char *const *skipped, long nskipped,
                      const struct tly_runjson_stage *stages, int nstages);

/* SHA-256 of a file's bytes as lowercase hex (hex[65]). */
int tly_sha256_file(const char *path, char hex[65]);

#endif
