#!/bin/sh
# The systemd units pass systemd-analyze verify (operations).  The service
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
