#!/bin/sh
# t50-xlsx-readback: the workbooks, read back by LibreOffice, equal the CSV
# reports; no cell shows an error; the charts are there; the same inputs
# give byte-identical workbooks (spec outputs.md "Workbooks").
#
# The reports come from the spec's gale-free-grant example through
# `tally run`.  Until `run` is implemented they come from the unit test's
# hand-made ledger (build/tests/test_report --fixture); without either,
# or without LibreOffice, the test is skipped.
set -u
here=$(cd "$(dirname "$0")" && pwd)
: "${root:=$(cd "$here/../.." && pwd)}"
: "${TALLY:=$root/tally}"

if ! command -v soffice >/dev/null 2>&1; then
    echo "SKIP: soffice (libreoffice-calc-nogui) not installed"
    exit 0
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tally-t50.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM

example=$root/../shared/spec/examples/gale-free-grant
if [ ! -d "$example/bundle" ]; then
    echo "SKIP: $example not found (the spec is not beside the checkout)"
    exit 0
fi

# reports DIR DB: writes one complete report directory
reports() {
    "$TALLY" --db "$2" run --rates "$example/rates.csv" --as-of 2026-10-10T00:00:00Z \
        --out "$1" "$example/bundle" 2>"$tmp/stderr"
}

if reports "$tmp/out" "$tmp/a.db"; then
    reports "$tmp/out2" "$tmp/b.db" || { cat "$tmp/stderr"; exit 1; }
elif grep -q "not implemented" "$tmp/stderr"; then
    fixture=$root/build/tests/test_report
    if [ ! -x "$fixture" ]; then
        echo "SKIP: 'tally run' is not implemented yet and $fixture is not built"
        exit 0
    fi
    echo "note: 'tally run' is not implemented yet; using the unit test's ledger"
    "$fixture" --fixture "$tmp/out" && "$fixture" --fixture "$tmp/out2" || exit 1
else
    echo "tally run failed:"
    cat "$tmp/stderr"
    exit 1
fi

status=0
for book in "$tmp/out/finance.xlsx" "$tmp/out"/accounts/*/usage.xlsx; do
    twin=$tmp/out2${book#"$tmp/out"}
    if ! cmp -s "$book" "$twin"; then
        echo "FAIL ${book#"$tmp/out/"} differs between two runs on the same inputs"
        status=1
    fi
    if ! unzip -l "$book" | grep -q 'xl/charts/chart1.xml'; then
        echo "FAIL ${book#"$tmp/out/"} has no chart"
        status=1
    fi
done
python3 "$here/xlsx_readback.py" "$tmp/out" || status=1

# A table longer than a sheet goes on in "NAME (2)", ... with its header,
# and its totals sum every part (rtable.h).  TALLY_SHEET_ROWS ends each
# sheet at row 7 instead of 1,048,576, so the fixtures' tables split.
TALLY_SHEET_ROWS=7 "$TALLY" --db "$tmp/split.db" run --rates "$root/fixtures/rates.csv" \
    --as-of 2026-11-05T00:00:00Z --out "$tmp/split" "$root/fixtures/gale.tar.gz" \
    "$root/fixtures/agent-platform" "$root/fixtures/process.zip" 2>"$tmp/stderr"
rc=$?
if [ "$rc" != 3 ]; then
    echo "FAIL run with TALLY_SHEET_ROWS=7: exit $rc"; cat "$tmp/stderr"; status=1
else
    for sheet in "Statements (2)" "Summary (2)" "Discrepancies (2)"; do
        unzip -p "$tmp/split/finance.xlsx" xl/workbook.xml | grep -q "name=\"$sheet\"" ||
            { echo "FAIL finance.xlsx with 7-row sheets has no sheet '$sheet'"; status=1; }
    done
    python3 "$here/xlsx_readback.py" "$tmp/split" || status=1
fi
exit $status
