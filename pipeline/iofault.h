/*
 * iofault.h — SQLite I/O failures on demand, for the fault tests.
 *
 * Issue 7 wants injected SQLite I/O failures looped over N, like the
 * allocation hook of alloc.h: with TALLY_FAULT_IO=N in the environment
 * the ledger is opened through a VFS that fails the Nth read, write,
 * truncate or sync (and every later one) as a failing disk would.  Without
 * it the ledger uses SQLite's default VFS and this file does nothing.
 * t71 loops N over a whole run.
 */
#ifndef TLY_IOFAULT_H
#define TLY_IOFAULT_H

/* The VFS name to open the ledger with: NULL (the default) unless TALLY_FAULT_IO is set. */
const char *tly_iofault_vfs(void);

#endif
