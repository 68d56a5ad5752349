#!/bin/sh
# The systemd units pass systemd-analyze verify (operations), and make install
# under any PREFIX gives a tree that works.  The service
# runs /usr/local/bin/tally-nightly, which a checkout has not installed, so
# a scratch copy points ExecStart at the checkout's script instead.
set -eu
: "${root:?}"
command -v systemd-analyze >/dev/null || { echo "SKIP: no systemd-analyze"; exit 0; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed "s|/usr/local/bin/tally-nightly|$root/scripts/tally-nightly|" \
    "$root/scripts/tally-nightly.service" > "$tmp/tally-nightly.service"
cp "$root/scripts/tally-nightly.timer" "$tmp/"
systemd-analyze verify --man=no "$tmp/tally-nightly.service" "$tmp/tally-nightly.timer"

# make install under another PREFIX than the one the binary was built with:
# the unit and the cron sample run that PREFIX's wrapper, and the installed
# binary renders digests from the templates of its own tree.
make -s -C "$root" install DESTDIR="$tmp/root" PREFIX=/opt/tally >/dev/null
unit=$tmp/root/opt/tally/lib/systemd/system/tally-nightly.service
grep -q '^ExecStart=/opt/tally/bin/tally-nightly$' "$unit" ||
    { echo "FAIL: installed unit: $(grep ExecStart "$unit")"; exit 1; }
grep -q 'exec /opt/tally/bin/tally-nightly$' "$tmp/root/opt/tally/share/tally/tally.cron.sample" ||
    { echo "FAIL: installed cron sample does not run /opt/tally/bin/tally-nightly"; exit 1; }
# the wrapper runs the tally installed beside it, not whichever one is on PATH
grep -q '^TALLY=${TALLY:-/opt/tally/bin/tally}$' "$tmp/root/opt/tally/bin/tally-nightly" ||
    { echo "FAIL: installed tally-nightly: $(grep '^TALLY=' "$tmp/root/opt/tally/bin/tally-nightly")"; exit 1; }
rc=0
(cd "$tmp" && "$tmp/root/opt/tally/bin/tally" --db "$tmp/i.db" run --rates "$root/fixtures/rates.csv" \
    --as-of 2026-11-05T00:00:00Z --out "$tmp/out" "$root/fixtures/gale.tar.gz" \
    </dev/null >/dev/null 2>"$tmp/err") || rc=$?
[ "$rc" = 0 ] || [ "$rc" = 3 ] || { echo "FAIL: installed tally run: exit $rc"; cat "$tmp/err"; exit 1; }
ls "$tmp/out/outbox/"*.eml >/dev/null 2>&1 || { echo "FAIL: installed tally wrote no digest"; exit 1; }
echo "ok: units verify; an install under /opt/tally runs from its own tree"
