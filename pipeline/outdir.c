/*
 * outdir.c — build-beside-then-swap output directories (see outdir.h).
 */
#include "outdir.h"
#include "alloc.h"
#include "error.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <ftw.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* A directory made read-only (a DIR of mode 0555, swapped out) can be emptied again. */
static int open_dir(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)ftw;
    if (flag == FTW_D && (sb->st_mode & S_IRWXU) != S_IRWXU)
        chmod(path, (sb->st_mode & 07777) | S_IRWXU);
    return 0;
}

void tly_rmtree(const char *path)
{
    nftw(path, open_dir, 16, FTW_PHYS);
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int tly_mkdir(const char *path)
{
    if (mkdir(path, 0755) == 0 || errno == EEXIST)
        return TLY_OK;
    return tly_error(TLY_ERR_OUTPUT, "cannot create '%s': %s", path, strerror(errno));
}

/*
 * Removes a tree this module left beside DIR.  One another user owns (a
 * run by hand as root before the service user's) cannot be removed: say
 * so, since nothing else will notice it.
 */
static void remove_beside(const char *path, const char *what)
{
    struct stat st;

    tly_rmtree(path);
    if (lstat(path, &st) == 0)
        tly_warn("cannot remove %s '%s' (not this user's?): remove it by hand", what, path);
}

/* A copy of 'path' without trailing slashes ("out/" names "out"; "/" stays). */
static char *without_slashes(const char *path)
{
    char *copy = tly_strdup(path);
    size_t n = copy ? strlen(copy) : 0;

    while (n > 1 && copy[n - 1] == '/')
        copy[--n] = '\0';
    return copy;
}

/* Splits 'final' into its parent and base name (both newly allocated). */
static int split(const char *final, char **parent, char **base)
{
    char *a = without_slashes(final), *b = a ? tly_strdup(a) : NULL;

    *parent = *base = NULL;
    if (!a || !b) {
        tly_free(a);
        tly_free(b);
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    }
    *parent = tly_strdup(dirname(a));
    *base = tly_strdup(basename(b));
    tly_free(a);
    tly_free(b);
    if (!*parent || !*base) {
        tly_free(*parent);
        tly_free(*base);
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    }
    return TLY_OK;
}

/* Temporary trees of earlier runs that were killed before their swap. */
static void remove_stale(const char *parent, const char *base)
{
    char prefix[512], path[4096];
    struct dirent *e;
    DIR *d = opendir(parent);

    if (!d)
        return;
    snprintf(prefix, sizeof prefix, ".%s.tally-", base);
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, prefix, strlen(prefix))) {
            snprintf(path, sizeof path, "%s/%s", parent, e->d_name);
            remove_beside(path, "an earlier run's tree");
        }
    closedir(d);
}

/*
 * Where the name 'path' is, its directory's links resolved but not a link
 * of its own ("PARENT/BASE"), into 'out'.  0 when the parent does not
 * resolve, -1 when out of memory (reported).
 */
static int locate(const char *path, char out[PATH_MAX])
{
    char *parent, *base;
    int found = 0;

    if (split(path, &parent, &base))
        return -1;
    if (!strcmp(base, ".") || !strcmp(base, ".."))
        found = realpath(path, out) != NULL;            /* names no entry of its own */
    else if (realpath(parent, out)) {
        found = strlen(out) + 1 + strlen(base) < PATH_MAX;
        if (found)
            strcat(strcat(out, "/"), base);
    }
    tly_free(parent);
    tly_free(base);
    return found;
}

/* Is 'p' the directory 'dir' (its length n, links resolved) or inside it? */
static int within(const char *p, const char *dir, size_t n)
{
    return !strncmp(p, dir, n) && (p[n] == '\0' || p[n] == '/' || n == 1);
}

/*
 * The swap replaces whatever is at DIR and deletes it.  A DIR that is a
 * file, or that holds the ledger (`--out .` beside ./tally.db, a nightly
 * directory that also keeps the database) or this run's own inputs, would
 * be destroyed: refuse.  A kept file is looked for both where its name is
 * (a link inside DIR to a ledger elsewhere would be deleted) and where it
 * leads.  A DIR that is a symbolic link would be replaced by a directory
 * and the tree it points to left behind: refuse that too.
 */
int tly_outdir_check(const char *final, const struct tly_outdir_keep *keep)
{
    char dir[PATH_MAX], where[PATH_MAX], *name = without_slashes(final), *copy = NULL;
    struct stat st;
    size_t n;
    int err = TLY_OK;

    if (!name)
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    if (lstat(name, &st) != 0) {        /* a new DIR: its parent must exist (outputs.md) */
        if (!(copy = tly_strdup(name)))
            err = tly_error(TLY_ERR_NOMEM, "out of memory");
        else if (stat(dirname(copy), &st) != 0 || !S_ISDIR(st.st_mode))
            err = tly_error(TLY_ERR_OUTPUT, "cannot write '%s': its parent directory does not exist",
                            final);
    } else if (S_ISLNK(st.st_mode)) {
        err = tly_error(TLY_ERR_OUTPUT, "cannot write '%s': it is a symbolic link, which the swap"
                        " would replace; name the directory itself", final);
    } else if (!S_ISDIR(st.st_mode)) {
        err = tly_error(TLY_ERR_OUTPUT, "cannot write '%s': it exists and is not a directory", final);
    } else if (realpath(name, dir)) {
        n = strlen(dir);
        for (; keep && keep->path && !err; keep++) {
            int located = locate(keep->path, where);

            if (located < 0)
                err = TLY_ERR_NOMEM;
            else if ((located && within(where, dir, n)) ||
                     (realpath(keep->path, where) && within(where, dir, n)))
                err = tly_error(TLY_ERR_OUTPUT, "cannot write '%s': it holds %s '%s', and DIR is"
                                " replaced whole; give the reports a directory of their own", final,
                                keep->what, keep->path);
        }
    }
    tly_free(copy);
    tly_free(name);
    return err;
}

/*
 * The mode DIR gets: the one it has (an admin's chmod 700 on the reports
 * survives the nightly swap), else what mkdir() gives under the umask.
 * mkdtemp() makes 0700, and umask() cannot be read without being set for
 * every thread, so the umask is read off a probe directory made inside.
 */
static void set_dir_mode(const char *tmp, const char *final)
{
    char probe[4096];
    struct stat st;

    if (stat(final, &st) == 0) {
        chmod(tmp, st.st_mode & 07777);
        return;
    }
    snprintf(probe, sizeof probe, "%s/.mode", tmp);
    if (mkdir(probe, 0777) == 0) {
        if (stat(probe, &st) == 0)
            chmod(tmp, st.st_mode & 0777);
        rmdir(probe);
    }
}

int tly_outdir_begin(const char *final, const struct tly_outdir_keep *keep, struct tly_outdir *o)
{
    char *parent, *base;
    size_t n;
    int err;

    o->final = o->tmp = NULL;
    /* tly_outdir_check has refused a missing parent, a file, a link, a DIR holding what is kept */
    if ((err = tly_outdir_check(final, keep)) || (err = split(final, &parent, &base)))
        return err;
    remove_stale(parent, base);
    n = strlen(parent) + strlen(base) + 32;
    o->final = tly_strdup(final);
    o->tmp = tly_malloc(n);
    if (!o->final || !o->tmp) {
        err = tly_error(TLY_ERR_NOMEM, "out of memory");
        goto out;
    }
    snprintf(o->tmp, n, "%s/.%s.tally-XXXXXX", parent, base);
    if (!mkdtemp(o->tmp)) {
        err = tly_error(TLY_ERR_OUTPUT, "cannot create a directory beside '%s': %s", final,
                        strerror(errno));
        goto out;
    }
    err = TLY_OK;
out:
    tly_free(parent);
    tly_free(base);
    if (err) {
        tly_free(o->final);
        tly_free(o->tmp);
        o->final = o->tmp = NULL;
    }
    return err;
}

int tly_outdir_commit(struct tly_outdir *o)
{
    int fd, err = TLY_OK;

    /* only now: a DIR an admin made read-only (0555) must not stop the writing */
    set_dir_mode(o->tmp, o->final);
    /* the new tree reaches the disk before it becomes DIR */
    fd = open(o->tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || syncfs(fd) != 0) {
        err = tly_error(TLY_ERR_IO, "cannot sync '%s': %s", o->tmp, strerror(errno));
        if (fd >= 0)
            close(fd);
        tly_outdir_abort(o);
        return err;
    }
    close(fd);
    if (renameat2(AT_FDCWD, o->tmp, AT_FDCWD, o->final, RENAME_EXCHANGE) == 0) {
        remove_beside(o->tmp, "the previous reports");     /* swapped out */
    } else if (errno == ENOENT && rename(o->tmp, o->final) == 0) {
        /* no previous DIR */
    } else {
        err = tly_error(TLY_ERR_OUTPUT, "cannot replace '%s': %s", o->final, strerror(errno));
        tly_rmtree(o->tmp);
    }
    tly_free(o->final);
    tly_free(o->tmp);
    o->final = o->tmp = NULL;
    return err;
}

void tly_outdir_abort(struct tly_outdir *o)
{
    if (o->tmp)
        tly_rmtree(o->tmp);
    tly_free(o->final);
    tly_free(o->tmp);
    o->final = o->tmp = NULL;
}
