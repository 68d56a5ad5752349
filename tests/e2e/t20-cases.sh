#!/bin/sh
# t20-cases: the project's own hand-computed acceptance cases
# (tests/e2e/cases/*/, the format of the spec's worked examples) run through
# the spec's check-examples runner against $TALLY, with and without the
# quiet-day shortcut (simulate.c).  Fails when any case fails.
set -u
here=$(cd "$(dirname "$0")" && pwd)
: "${root:=$(cd "$here/../.." && pwd)}"
: "${TALLY:=$root/tally}"

checker=$root/../shared/tools/check-examples
if [ ! -x "$checker" ]; then
    echo "SKIP: $checker not found"
    exit 0
fi
if [ ! -d "$here/cases" ]; then
    echo "no cases under $here/cases"
    exit 1
fi
# A case that replaces the card names its other cards as @CASE@/FILE in its
# args; the runner starts tally in a scratch directory, so the cases run
# from a copy with @CASE@ made that copy's absolute path.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -R "$here/cases" "$work/cases"
for c in "$work"/cases/*/; do
    c=${c%/}
    grep -q '@CASE@' "$c/case.json" && sed -i "s#@CASE@#$c#g" "$c/case.json"
done
set -- "$work"/cases/*/
"$checker" --tally "$TALLY" "$@" || exit 1
# the same figures when every day is replayed run by run (no quiet days)
TALLY_REPLAY_EVERY_RUN=1 "$checker" --tally "$TALLY" "$@"
