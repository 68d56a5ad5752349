/*
 * stages.c — shared pieces of run, report, notify and balance.
 */
#include "stages.h"
#include "alloc.h"
#include "digest.h"
#include "error.h"
#include "money.h"
#include "timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* The reports write every date as YYYY-MM-DD (timeutil.h). */
static int as_of_in_range(int64_t as_of, const char *what)
{
    char text[TLY_TS_LEN];

    if (as_of >= TLY_EARLIEST_AS_OF && as_of <= TLY_LATEST_AS_OF)
        return TLY_OK;
    tly_format_ts(text, as_of);
    return tly_error(TLY_ERR_USAGE, "%s %s is outside 0001-01-01T00:00:00Z .. 9999-12-01T00:00:00Z,"
                     " the as-ofs whose cycles YYYY-MM-DD can write", what, text);
}

int tly_resolve_as_of(struct tly_ctx *ctx, const char *text, int64_t *as_of)
{
    const char *why;
    int found, err;

    if (text) {
        if (tly_parse_ts(text, strlen(text), as_of, &why))
            return tly_error(TLY_ERR_USAGE, "--as-of '%s': %s", text, why);
        return as_of_in_range(*as_of, "--as-of");
    }
    if ((err = tly_default_as_of(ctx->ledger, as_of, &found)))
        return err;
    if (!found)
        return tly_error(TLY_ERR_USAGE, "no --as-of given and no manifest period_end in the ledger");
    return as_of_in_range(*as_of, "the latest manifest period_end");
}

int tly_apply_grace(struct tly_ctx *ctx, const char *text)
{
    if (!text)
        return TLY_OK;
    return tly_settings_set(ctx->settings, "reconcile", "grace_hours", text, TLY_SRC_OPTION);
}

static int replay_every_run(void)
{
    const char *v = getenv("TALLY_REPLAY_EVERY_RUN");
    return v && *v && strcmp(v, "0");
}

int tly_stage_reconcile(struct tly_ctx *ctx, int64_t as_of, int close, int commit,
                        const char *only_account, struct tly_reconcile_stats *st)
{
    struct tly_reconcile_opts o = {
        .as_of = as_of,
        .grace_seconds = ctx->settings->grace_hours * 3600,
        .finetune_min = ctx->settings->finetune_min_micro,
        .close_cycles = close,
        /* test hook: the quiet-day shortcut must not change any output */
        .every_run = replay_every_run(),
        .only_account = only_account,
    };
    int err;

    if ((err = tly_ledger_begin(ctx->ledger)))
        return err;
    if ((err = tly_reconcile(ctx->ledger, &o, st))) {
        tly_ledger_rollback(ctx->ledger);
        return err;
    }
    if (!commit)
        return TLY_OK;
    return tly_ledger_commit(ctx->ledger);
}

static int usable_dir(const char *dir)
{
    return dir && *dir && access(dir, W_OK | X_OK) == 0;
}

/*
 * A container's /dev/shm may be 64 MiB, and a full tmpfs would fail the
 * run on a large sheet: it is only used with room to spare.
 */
#define SHM_MIN_FREE (1024LL << 20)

static int roomy(const char *dir)
{
    struct statvfs v;
    return statvfs(dir, &v) == 0 && (long long)v.f_bavail * (long long)v.f_frsize >= SHM_MIN_FREE;
}

const char *tly_scratch_dir(const struct tly_ctx *ctx)
{
    const char *tmpdir = getenv("TMPDIR");

    if (*ctx->settings->scratch_dir)
        return ctx->settings->scratch_dir;
    if (usable_dir(tmpdir))
        return tmpdir;
    return usable_dir("/dev/shm") && roomy("/dev/shm") ? "/dev/shm" : NULL;
}

struct tly_outdir_keep *tly_keep_list(const struct tly_ctx *ctx, const char *rates,
                                      char *const *bundles, int nbundles)
{
    struct tly_outdir_keep *keep = tly_calloc((size_t)nbundles + 5, sizeof *keep);
    int n = 0;

    if (!keep) {
        tly_error(TLY_ERR_NOMEM, "out of memory");
        return NULL;
    }
    keep[n++] = (struct tly_outdir_keep){ ctx->db_path, "the ledger" };
    if (ctx->config_path)
        keep[n++] = (struct tly_outdir_keep){ ctx->config_path, "the configuration" };
    keep[n++] = (struct tly_outdir_keep){ tly_digest_templates_dir(ctx->settings), "the templates" };
    if (rates)
        keep[n++] = (struct tly_outdir_keep){ rates, "the rate card" };
    for (int i = 0; i < nbundles; i++)
        keep[n++] = (struct tly_outdir_keep){ bundles[i], "the bundle" };
    return keep;
}
