#!/bin/sh
# The demo fixtures: their archives are reproducible from fixtures/src, and
# `tally run` on them gives the hand-computed figures of fixtures/README.md
# (fixtures/expected.json, checked like a spec example).
set -eu
: "${TALLY:?}" "${root:?}"
"$root/fixtures/build" --check
checker=$root/../shared/tools/check-examples
if [ ! -x "$checker" ]; then
    echo "SKIP: $checker not found (the figures need the spec's runner beside the checkout)"
    exit 0
fi
"$checker" --tally "$TALLY" "$root/fixtures/"
