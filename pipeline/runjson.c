/*
 * runjson.c — run.json with input and output digests (see runjson.h).
 */
#include "runjson.h"
#include "alloc.h"
#include "csvread.h"
#include "error.h"
#include "timeutil.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int tly_sha256_file(const char *path, char hex[65])
{
    static const char digits[] = "0123456789abcdef";
    struct sha256_ctx ctx;
    uint8_t digest[SHA256_DIGEST_SIZE], buf[65536];
    size_t n;
    FILE *f = fopen(path, "rb");

    if (!f)
        return tly_error(TLY_ERR_IO, "cannot read '%s': %s", path, strerror(errno));
    sha256_init(&ctx);
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        sha256_update(&ctx, n, buf);
    if (ferror(f)) {
        fclose(f);
        return tly_error(TLY_ERR_IO, "cannot read '%s': %s", path, strerror(errno));
    }
    fclose(f);
    sha256_digest(&ctx, sizeof digest, digest);
    for (int i = 0; i < SHA256_DIGEST_SIZE; i++) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 15];
    }
    hex[64] = '\0';
    return TLY_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Appends {"file", "sha256"} for every file under root/rel, sorted by path. */
static int list_outputs(const char *root, const char *rel, json_t *out)
{
    char path[4096], **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    DIR *d;
    int err = TLY_OK;

    snprintf(path, sizeof path, "%s%s%s", root, *rel ? "/" : "", rel);
    if (!(d = opendir(path)))
        return tly_error(TLY_ERR_IO, "cannot list '%s': %s", path, strerror(errno));
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
            (!*rel && !strcmp(e->d_name, "run.json")))
            continue;
        if (tly_grow(&names, &cap, n + 1, sizeof *names) || !(names[n] = tly_strdup(e->d_name))) {
            err = tly_error(TLY_ERR_NOMEM, "out of memory");
            break;
        }
        n++;
    }
    closedir(d);
    if (n)                              /* qsort(NULL, 0, …) is undefined */
        qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n && !err; i++) {
        char sub[4096], full[4096], hex[65];
        struct stat st;
        if (snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", names[i]) >= (int)sizeof sub ||
            snprintf(full, sizeof full, "%s/%s", root, sub) >= (int)sizeof full)
            err = tly_error(TLY_ERR_OUTPUT, "path too long under '%s'", root);
        else if (lstat(full, &st) != 0)
            err = tly_error(TLY_ERR_IO, "cannot stat '%s': %s", full, strerror(errno));
        else if (S_ISDIR(st.st_mode))
            err = list_outputs(root, sub, out);
        else if (!(err = tly_sha256_file(full, hex)) &&
                 json_array_append_new(out, json_pack("{s:s, s:s}", "file", sub, "sha256", hex)))
            err = tly_error(TLY_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++)
        tly_free(names[i]);
    tly_free(names);
    return err;
}

/*
 * A JSON string holds UTF-8 only, and jansson refuses anything else (an
 * append of that NULL is silently nothing).  Paths and file names from
 * outside may be Latin-1: their other bytes are shown as \xNN
 * (tly_utf8_shown), as in rejects.csv, so the entry is still listed.
 */
static json_t *text(const char *s)
{
    size_t n = strlen(s), used;
    json_t *j;
    char *shown;

    if (tly_utf8_valid(s, n))
        return json_string(s);
    if (!(shown = tly_malloc(4 * n + 1)))
        return NULL;
    tly_utf8_shown(s, n, shown, 4 * n + 1, &used);
    j = json_string(shown);
    tly_free(shown);
    return j;
}

int tly_runjson_write(const char *dir, int64_t as_of,
                      const struct tly_runjson_count *counts, int ncounts,
                      char *const *bundles, char *const *bundle_sha, int nbundles,
                      char *const *skipped, long nskipped,
                      const struct tly_runjson_stage *stages, int nstages)
{
    json_t *root = json_object(), *c = json_object(), *in = json_array(), *out = json_array(),
           *st = json_array(), *sk = json_array();
    char when[TLY_TS_LEN], path[4096], *json = NULL;
    FILE *f = NULL;
    int err = TLY_OK, failed = 0;

    if (!root || !c || !in || !out || !st || !sk) {
        err = tly_error(TLY_ERR_NOMEM, "out of memory");
        goto done;
    }
    /* jansson's setters fail only for want of memory; one missing key is a wrong run.json */
    tly_format_ts(when, as_of);
    for (int i = 0; i < ncounts; i++)
        failed |= json_object_set_new(c, counts[i].name, json_integer(counts[i].value));
    for (int i = 0; i < nbundles; i++)
        failed |= json_array_append_new(in, json_pack("{s:o, s:s}", "bundle", text(bundles[i]),
                                                      "sha256", bundle_sha[i] ? bundle_sha[i] : ""));
    for (long i = 0; i < nskipped; i++)
        failed |= json_array_append_new(sk, text(skipped[i]));
    for (int i = 0; i < nstages; i++)
        failed |= json_array_append_new(st, json_pack("{s:s, s:f}", "stage", stages[i].name,
                                                      "seconds", stages[i].seconds));
    if ((err = list_outputs(dir, "", out)))
        goto done;
    failed |= json_object_set_new(root, "version", json_string(TALLY_VERSION));
    failed |= json_object_set_new(root, "as_of", json_string(when));
    failed |= json_object_set(root, "counts", c);
    failed |= json_object_set(root, "inputs", in);
    failed |= json_object_set(root, "skipped_files", sk);
    failed |= json_object_set(root, "outputs", out);
    failed |= json_object_set(root, "stages", st);
    if (failed) {
        err = tly_error(TLY_ERR_NOMEM, "cannot build run.json: out of memory");
        goto done;
    }
    snprintf(path, sizeof path, "%s/run.json", dir);
    /* built first, then written: json_dump_file says "failed" alike for memory and the disk */
    if (!(json = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6)))) {
        err = tly_error(TLY_ERR_NOMEM, "cannot build run.json: out of memory");
        goto done;
    }
    if (!(f = fopen(path, "w")) || fputs(json, f) == EOF) {
        err = tly_error(TLY_ERR_OUTPUT, "cannot write '%s': %s", path, strerror(errno));
        if (f)
            fclose(f);
    } else if (fclose(f) != 0) {
        err = tly_error(TLY_ERR_OUTPUT, "cannot write '%s': %s", path, strerror(errno));
    }
done:
    free(json);     /* jansson's allocator: alloc.h's (main) or malloc's, both free() */
    json_decref(root);
    json_decref(c);
    json_decref(in);
    json_decref(out);
    json_decref(st);
    json_decref(sk);
    return err;
}
