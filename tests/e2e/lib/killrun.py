#!/usr/bin/env python3
"""killrun.py — run a command with stderr on a pseudo-terminal and SIGKILL it.

    killrun.py [--delay S] [--stage NAME [--plus S]] [--log FILE] -- CMD...

tally prints its stage progress ("tally: run: ingest ...") only when stderr is
a terminal, so the command gets a pty as stderr and this script watches those
lines.  With --delay the command is killed S seconds after it was started;
with --stage it is killed S seconds (--plus, default 0) after the first
progress line naming "run: NAME".  Without either it runs to completion
(a trace).  Prints one line on stdout:

    killed ELAPSED LASTSTAGE
    exited RC ELAPSED LASTSTAGE

followed by "stage NAME OFFSET" for every progress line seen (offsets in
seconds from the start).  --log keeps the command's stderr.
"""
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time


def main(argv):
    delay = stage = log = None
    plus = 0.0
    i = 0
    while i < len(argv) and argv[i] != "--":
        opt = argv[i]
        if opt in ("--delay", "--stage", "--plus", "--log") and i + 1 < len(argv):
            val = argv[i + 1]
            if opt == "--delay":
                delay = float(val)
            elif opt == "--stage":
                stage = val
            elif opt == "--plus":
                plus = float(val)
            else:
                log = val
            i += 2
        else:
            sys.stderr.write("killrun.py: bad argument %r\n" % opt)
            return 2
    cmd = argv[i + 1:]
    if not cmd:
        sys.stderr.write("killrun.py: no command\n")
        return 2

    master, slave = pty.openpty()
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=slave, close_fds=True)
    os.close(slave)
    deadline = t0 + delay if delay is not None else None
    buf = b""
    captured = []
    stages = []            # (name, offset)
    killed = False
    open_master = True

    # a progress line is drawn as "\rtext\033[K" (redrawn in place), a
    # message as "text\n": either end completes a line
    ends = re.compile(rb"\r|\n|\x1b\[K")

    def scan(now):
        nonlocal buf, deadline
        while True:
            m = ends.search(buf)
            if not m:
                break
            line, buf = buf[:m.start()], buf[m.end():]
            if not line:
                continue
            text = line.decode("utf-8", "replace")
            captured.append(text)
            m = re.match(r"tally: run: (\w+)", text)
            if m and m.group(1) in ("rates", "ingest", "reconcile", "report", "notify"):
                name = m.group(1)
                if not stages or stages[-1][0] != name:
                    stages.append((name, now - t0))
                if stage is not None and name == stage and deadline is None:
                    deadline = now + plus

    while True:
        now = time.monotonic()
        if not killed and deadline is not None and now >= deadline:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                killed = True
            deadline = None
        if proc.poll() is not None and not open_master:
            break
        timeout = 0.05
        if deadline is not None:
            timeout = max(0.0, min(timeout, deadline - now))
        if open_master:
            r, _, _ = select.select([master], [], [], timeout)
            if r:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    open_master = False
                    os.close(master)
                else:
                    buf += chunk
                    scan(time.monotonic())
        else:
            time.sleep(timeout)
    if open_master:
        os.close(master)
    rc = proc.wait()
    elapsed = time.monotonic() - t0
    if buf:
        captured.append(buf.decode("utf-8", "replace"))
    if log:
        with open(log, "w") as f:
            f.write("\n".join(captured) + ("\n" if captured else ""))
    last = stages[-1][0] if stages else "start"
    if killed and rc == -signal.SIGKILL:
        print("killed %.3f %s" % (elapsed, last))
    else:
        print("exited %d %.3f %s" % (rc if rc >= 0 else 128 - rc, elapsed, last))
    for name, off in stages:
        print("stage %s %.3f" % (name, off))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
