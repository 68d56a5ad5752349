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
set -- "$here"/cases/*/
if [ ! -d "$1" ]; then
    echo "no cases under $here/cases"
    exit 1
fi
"$checker" --tally "$TALLY" "$@" || exit 1
# the same figures when every day is replayed run by run (no quiet days)
TALLY_REPLAY_EVERY_RUN=1 "$checker" --tally "$TALLY" "$@"
