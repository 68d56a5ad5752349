/*
 * iofault.c — SQLite I/O fault injection for the tests (see iofault.h).
 *
 * A VFS that hands every call to the default one, except that from the
 * Nth read, write, truncate or sync on (TALLY_FAULT_IO=N) each of those
 * fails as the disk would: SQLITE_IOERR_READ/WRITE/TRUNCATE/FSYNC.  What
 * the test then looks for is Tally's side: a clean 74 with one message,
 * no leak, and a ledger that the next run opens, recovers and completes.
 */
#include "iofault.h"

#include <sqlite3.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static _Atomic long fail_at = -1;       /* -1: not read from the environment yet */
static _Atomic long calls;
static sqlite3_vfs vfs, *real_vfs;

/* One open file: ours first, the default VFS's right after it. */
struct iofile {
    sqlite3_file base;
};
#define REAL(f) ((sqlite3_file *)((struct iofile *)(f) + 1))

static int failing(void)
{
    return fail_at > 0 && ++calls >= fail_at;
}

static int io_close(sqlite3_file *f)
{
    return REAL(f)->pMethods->xClose(REAL(f));
}

static int io_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off)
{
    return failing() ? SQLITE_IOERR_READ : REAL(f)->pMethods->xRead(REAL(f), buf, amt, off);
}

static int io_write(sqlite3_file *f, const void *buf, int amt, sqlite3_int64 off)
{
    return failing() ? SQLITE_IOERR_WRITE : REAL(f)->pMethods->xWrite(REAL(f), buf, amt, off);
}

static int io_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    return failing() ? SQLITE_IOERR_TRUNCATE : REAL(f)->pMethods->xTruncate(REAL(f), size);
}

static int io_sync(sqlite3_file *f, int flags)
{
    return failing() ? SQLITE_IOERR_FSYNC : REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int io_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
    return REAL(f)->pMethods->xFileSize(REAL(f), size);
}

static int io_lock(sqlite3_file *f, int level)
{
    return REAL(f)->pMethods->xLock(REAL(f), level);
}

static int io_unlock(sqlite3_file *f, int level)
{
    return REAL(f)->pMethods->xUnlock(REAL(f), level);
}

static int io_check_reserved(sqlite3_file *f, int *out)
{
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int io_file_control(sqlite3_file *f, int op, void *arg)
{
    return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

static int io_sector_size(sqlite3_file *f)
{
    return REAL(f)->pMethods->xSectorSize(REAL(f));
}

static int io_device(sqlite3_file *f)
{
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

static int io_shm_map(sqlite3_file *f, int region, int size, int extend, void volatile **out)
{
    return REAL(f)->pMethods->xShmMap(REAL(f), region, size, extend, out);
}

static int io_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
    return REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags);
}

static void io_shm_barrier(sqlite3_file *f)
{
    REAL(f)->pMethods->xShmBarrier(REAL(f));
}

static int io_shm_unmap(sqlite3_file *f, int delete_flag)
{
    return REAL(f)->pMethods->xShmUnmap(REAL(f), delete_flag);
}

/* No memory-mapped reads: they would go around io_read. */
static const sqlite3_io_methods methods = {
    2, io_close, io_read, io_write, io_truncate, io_sync, io_file_size, io_lock, io_unlock,
    io_check_reserved, io_file_control, io_sector_size, io_device, io_shm_map, io_shm_lock,
    io_shm_barrier, io_shm_unmap, NULL, NULL,
};

static int io_open(sqlite3_vfs *v, const char *name, sqlite3_file *f, int flags, int *out_flags)
{
    int rc;

    (void)v;
    rc = real_vfs->xOpen(real_vfs, name, REAL(f), flags, out_flags);
    f->pMethods = REAL(f)->pMethods ? &methods : NULL;
    return rc;
}

static int io_delete(sqlite3_vfs *v, const char *name, int sync_dir)
{
    (void)v;
    return real_vfs->xDelete(real_vfs, name, sync_dir);
}

static int io_access(sqlite3_vfs *v, const char *name, int flags, int *out)
{
    (void)v;
    return real_vfs->xAccess(real_vfs, name, flags, out);
}

static int io_full_pathname(sqlite3_vfs *v, const char *name, int n, char *out)
{
    (void)v;
    return real_vfs->xFullPathname(real_vfs, name, n, out);
}

static int io_randomness(sqlite3_vfs *v, int n, char *out)
{
    (void)v;
    return real_vfs->xRandomness(real_vfs, n, out);
}

static int io_sleep(sqlite3_vfs *v, int micros)
{
    (void)v;
    return real_vfs->xSleep(real_vfs, micros);
}

static int io_current_time(sqlite3_vfs *v, double *out)
{
    (void)v;
    return real_vfs->xCurrentTime(real_vfs, out);
}

static int io_last_error(sqlite3_vfs *v, int n, char *out)
{
    (void)v;
    return real_vfs->xGetLastError(real_vfs, n, out);
}

static int io_current_time64(sqlite3_vfs *v, sqlite3_int64 *out)
{
    (void)v;
    return real_vfs->xCurrentTimeInt64(real_vfs, out);
}

const char *tly_iofault_vfs(void)
{
    if (fail_at < 0) {
        const char *env = getenv("TALLY_FAULT_IO");         /* read before any thread starts */
        fail_at = env ? strtol(env, NULL, 10) : 0;
    }
    if (fail_at <= 0)
        return NULL;
    if (!real_vfs) {
        if (!(real_vfs = sqlite3_vfs_find(NULL)) || real_vfs->iVersion < 2)
            return NULL;
        vfs = (sqlite3_vfs){
            .iVersion = 2, .szOsFile = (int)sizeof(struct iofile) + real_vfs->szOsFile,
            .mxPathname = real_vfs->mxPathname, .zName = "tally-iofault",
            .xOpen = io_open, .xDelete = io_delete, .xAccess = io_access,
            .xFullPathname = io_full_pathname, .xRandomness = io_randomness, .xSleep = io_sleep,
            .xCurrentTime = io_current_time, .xGetLastError = io_last_error,
            .xCurrentTimeInt64 = io_current_time64,
        };
        if (sqlite3_vfs_register(&vfs, 0) != SQLITE_OK) {
            real_vfs = NULL;
            return NULL;
        }
    }
    return vfs.zName;
}
