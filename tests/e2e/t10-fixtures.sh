#!/bin/sh
# The demo fixtures: their archives are reproducible from fixtures/src, and
# `tally run` on them gives the hand-computed figures of fixtures/README.md
# (fixtures/expected.json, checked like a spec example).
set -eu
: "${TALLY:?}" "${root:?}"
"$root/fixtures/build" --check
"$root/../shared/tools/check-examples" --tally "$TALLY" "$root/fixtures/"
