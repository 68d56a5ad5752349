/*
 * runjson.h — DIR/run.json, the monitoring record of a nightly run
 * (spec outputs.md "Command line").
 *
 *   {"version", "as_of", "counts": {...}, "inputs": [{"bundle", "sha256"}],
 *    "outputs": [{"file", "sha256"}], "stages": [{"stage", "seconds"}]}
 *
 * "outputs" lists every other file under the directory, sorted by path.
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
                      const struct tly_runjson_stage *stages, int nstages);

/* SHA-256 of a file's bytes as lowercase hex (hex[65]). */
int tly_sha256_file(const char *path, char hex[65]);

#endif
