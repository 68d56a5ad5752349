/*
 * fuzz_bundle.c — libFuzzer target for the bundle reader (spec inputs.md
 * "Bundles").
 *
 * The input is written to a scratch file named x.tar.gz, x.zip and
 * x.csv.gz in turn (the name picks the reader: libarchive with every enabled
 * format and filter, then the single-file gunzip path) and read through the
 * public API to the end, with small bounds so a bomb costs milliseconds.
 * Any bytes must end in entries or a reject: never a crash, a leak, or a read
 * past the bounds.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bundle.h"
#include "error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const names[] = { "x.tar.gz", "x.zip", "x.csv.gz" };
static char scratch[] = "/tmp/tally-fuzz-bundle-XXXXXX";

static const char *scratch_path(const char *name)
{
    static char path[sizeof scratch + 16];

    snprintf(path, sizeof path, "%s/%s", scratch, name);
    return path;
}

static void remove_scratch(void)
{
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        unlink(scratch_path(names[i]));
    rmdir(scratch);
}

/* Harness setup, not the code under test: a fuzz run that cannot write its file must stop loudly. */
static void setup(void)
{
    tly_error_quiet(1);
    if (!mkdtemp(scratch))
        abort();
    atexit(remove_scratch);
}

static void write_input(const char *path, const uint8_t *data, size_t size)
{
    FILE *f = fopen(path, "wb");

    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
        abort();
}

static void read_through(const char *path, const struct tly_settings *s)
{
    static char buf[16 * 1024];
    struct tly_bundle *b;
    struct tly_bundle_entry e;
    struct tly_bundle_reject rej;
    char hex[65];
    ssize_t n;

    tly_bundle_identity(path, hex, &rej);
    if (tly_bundle_open(path, s, &b, &rej) != 0)
        return;
    while (tly_bundle_next(b, &e, &rej) == 1) {
        /* skipping OTHER entries exercises the drain path, as ingest does */
        if (e.type == TLY_FILE_OTHER)
            continue;
        while ((n = tly_bundle_read(b, buf, sizeof buf, &rej)) > 0)
            ;
        if (n < 0)
            break;
        tly_bundle_entry_sha256(b, hex);
    }
    tly_bundle_close(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    struct tly_settings s;

    if (!ready) {
        setup();
        ready = 1;
    }
    memset(&s, 0, sizeof s);
    s.max_entry_bytes = 1 << 20;
    s.max_bundle_bytes = 4 << 20;
    s.max_entries = 64;
    s.max_ratio = 50;
    s.ratio_after_bytes = 64 << 10;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *path = scratch_path(names[i]);

        write_input(path, data, size);
        read_through(path, &s);
    }
    return 0;
}
