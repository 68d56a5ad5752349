/*
 * stages.h — what the commands that compute at an as-of share:
 * resolving --as-of and --grace, the reconcile stage in its own
 * transaction, and stage timing.
 */
#ifndef TLY_STAGES_H
#define TLY_STAGES_H

#include <stdint.h>
#include <time.h>

#include "cmd.h"
#include "outdir.h"
#include "reconcile.h"
#include "timeutil.h"

/* --as-of TEXT, else the latest manifest period_end; none → usage error 64. */
int tly_resolve_as_of(struct tly_ctx *ctx, const char *text, int64_t *as_of);
/* --grace HOURS over the setting. */
int tly_apply_grace(struct tly_ctx *ctx, const char *text);
/*
 * Reconcile as one committed stage ('close' = run/report), or rolled back
 * later (balance, which names its one account in 'only_account').
 */
int tly_stage_reconcile(struct tly_ctx *ctx, int64_t as_of, int close, int commit,
                        const char *only_account, struct tly_reconcile_stats *st);

/*
 * Where workbooks are assembled: report.scratch_dir, else $TMPDIR, else
 * /dev/shm when writable with 1 GiB free, else NULL (beside each workbook).  libxlsxwriter
 * writes a scratch file per part (30 or so a workbook) and deletes it; on
 * the report's own ext4 those fresh deleted inodes slow every later file
 * creation of the run, and a tmpfs costs nothing.
 */
const char *tly_scratch_dir(const struct tly_ctx *ctx);

/*
 * What the swap of an output directory must not destroy (outdir.h): the
 * ledger, the --config file, the templates directory set, the rate card
 * 'rates' (or NULL) and the 'nbundles' bundles.  NULL when out of memory
 * (reported); the caller frees it with tly_free().
 */
struct tly_outdir_keep *tly_keep_list(const struct tly_ctx *ctx, const char *rates,
                                      char *const *bundles, int nbundles);

#endif
