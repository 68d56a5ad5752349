#!/usr/bin/env python3
"""overlap.py — run commands while another one is in a given stage.

    overlap.py --at STAGE --log PREFIX -- FIRST... ::: SECOND... [::: SECOND...]

FIRST is started with stderr on a pseudo-terminal (tally prints its stage
progress, "tally: run: ingest ...", only to a terminal).  As soon as it
prints the progress line of STAGE, each SECOND command is run in turn, to
completion, with stderr in PREFIX.N (N = 1, 2, ...).  Then FIRST is waited
for; its stderr goes to PREFIX.0.  Prints on stdout, one line each:

    second N RC SECONDS FIRST_STILL_RUNNING(1|0)
    first RC SECONDS

Exit 2 when STAGE never showed (the first command's result is printed).
"""
import os
import pty
import select
import subprocess
import sys
import time


def main(argv):
    at = log = None
    i = 0
    while i < len(argv) and argv[i] != "--":
        if argv[i] == "--at":
            at = argv[i + 1]
        elif argv[i] == "--log":
            log = argv[i + 1]
        else:
            sys.stderr.write("overlap.py: bad argument %r\n" % argv[i])
            return 2
        i += 2
    cmds, cur = [], []
    for a in argv[i + 1:]:
        if a == ":::":
            cmds.append(cur)
            cur = []
        else:
            cur.append(a)
    cmds.append(cur)
    first, seconds = cmds[0], cmds[1:]

    master, slave = pty.openpty()
    t0 = time.monotonic()
    proc = subprocess.Popen(first, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=slave, close_fds=True)
    os.close(slave)
    out = b""
    fired = False
    results = []
    while True:
        try:
            r, _, _ = select.select([master], [], [], 0.05)
            chunk = os.read(master, 65536) if r else None
        except OSError:
            chunk = b""
        if chunk == b"":
            break
        if chunk:
            out += chunk
        if not fired and ("tally: run: %s" % at).encode() in out:
            fired = True
            for n, cmd in enumerate(seconds, 1):
                with open("%s.%d" % (log, n), "wb") as err:
                    s0 = time.monotonic()
                    rc = subprocess.call(cmd, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=err)
                    took = time.monotonic() - s0
                results.append("second %d %d %.3f %d" % (n, rc, took, proc.poll() is None))
        if chunk is None and proc.poll() is not None:
            # drain what is left, then stop
            continue
    os.close(master)
    rc = proc.wait()
    with open("%s.0" % log, "wb") as f:
        f.write(out.replace(b"\r\n", b"\n"))
    for line in results:
        print(line)
    print("first %d %.3f" % (rc, time.monotonic() - t0))
    return 0 if fired else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
