/*
 * outdir.h — report directories written atomically (spec outputs.md, §9.4).
 *
 * The reports are built in a temporary directory beside the final DIR
 * (".DIR.tally-XXXXXX" in the same parent, so the swap is a rename on one
 * file system) and swapped in only when complete: DIR always holds one
 * complete run, and a run that fails leaves the previous one untouched.
 * An existing DIR is exchanged with renameat2(RENAME_EXCHANGE) and the old
 * tree removed afterwards; temporary directories left by a killed run are
 * removed by the next one.
 *
 * Ownership: tly_outdir_begin() fills 'o'; end with tly_outdir_commit() or
 * tly_outdir_abort(), which both free it (abort accepts a zeroed struct).
 */
#ifndef TLY_OUTDIR_H
#define TLY_OUTDIR_H

struct tly_outdir {
    char *final;        /* DIR as given */
    char *tmp;          /* the directory being built */
};

/* A file the command needs after the swap: the ledger, the rate card, a bundle. */
struct tly_outdir_keep {
    const char *path;   /* NULL ends a list */
    const char *what;   /* for the message: "the ledger", "the bundle" */
};

/*
 * No file of 'keep' (a list ended by a NULL path) may be DIR or inside it,
 * and DIR must be a directory, not a file or a symbolic link: each is
 * refused (TLY_ERR_OUTPUT) rather than destroyed or replaced by the swap.
 * tly_outdir_check is that test alone, for callers that want it before any
 * work.
 */
int tly_outdir_check(const char *final, const struct tly_outdir_keep *keep);
int tly_outdir_begin(const char *final, const struct tly_outdir_keep *keep, struct tly_outdir *o);
int tly_outdir_commit(struct tly_outdir *o);
void tly_outdir_abort(struct tly_outdir *o);

/* Creates 'path' as a directory (0755) if missing; the parent must exist. */
int tly_mkdir(const char *path);
/* Removes a directory tree (best effort; used for temporary trees only). */
void tly_rmtree(const char *path);

#endif
