#!/bin/sh
# t73-rerun: idempotence and determinism (spec semantics.md §9.1
# "Idempotent", §10 "a re-run at the same as-of shows the same digests
# again, byte for byte, and creates none; run.json is the only output that
# differs between re-runs"; outputs.md "the same inputs and as-of give a
# byte-identical workbook").
#
# For two inputs (the demo fixtures: tar.gz, zip, a directory, two
# quarantined rows, exit 3; and two generated gzip bundles, exit 0):
#   1. a run, then the same run again on the same ledger: the same exit
#      status and byte-identical CSVs, workbooks, digests (.eml) and
#      notifications.csv (every file but run.json);
#   2. the same run on a fresh ledger, from another working directory with
#      relative paths, into a DIR of another name, under another time zone
#      and locale: byte-identical to the first.
# shellcheck disable=SC2046,SC2086  # $BUNDLES and result lines split on purpose
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/common.sh"
e2e_init t73

problems=0
check_round() {
    # check_round LABEL
    label=$1
    mkdir -p "$tmp/$label/work"
    db=$tmp/$label/a.db
    "$TALLY" --db "$db" run --rates "$RATES" --as-of "$ASOF" --out "$tmp/$label/first" $BUNDLES \
        </dev/null >/dev/null 2>"$tmp/$label/err1"
    rc1=$?
    [ "$rc1" = "$EXPECT_RC" ] || { problems=$((problems + 1)); echo "FAIL: [$label] first run exited $rc1 (expected $EXPECT_RC): $(tail -2 "$tmp/$label/err1")"; }
    san_clean "$tmp/$label/err1" || problems=$((problems + 1))
    ls "$tmp/$label/first"/*.csv "$tmp/$label/first"/*.xlsx "$tmp/$label/first"/outbox/*.eml >/dev/null 2>&1 ||
        { problems=$((problems + 1)); echo "FAIL: [$label] the first run wrote no CSV, workbook or digest"; }

    # 1. the same run again, same ledger, same DIR
    cp -a "$tmp/$label/first" "$tmp/$label/first.kept"
    "$TALLY" --db "$db" run --rates "$RATES" --as-of "$ASOF" --out "$tmp/$label/first" $BUNDLES \
        </dev/null >/dev/null 2>"$tmp/$label/err2"
    rc2=$?
    [ "$rc2" = "$rc1" ] || { problems=$((problems + 1)); echo "FAIL: [$label] the re-run exited $rc2, the first run $rc1"; }
    san_clean "$tmp/$label/err2" || problems=$((problems + 1))
    same_tree "$tmp/$label/first.kept" "$tmp/$label/first" ||
        { problems=$((problems + 1)); echo "FAIL: [$label] the re-run on the same ledger changed the outputs (above)"; }
    new=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["counts"]["digests_new"])' \
        "$tmp/$label/first/run.json" 2>&1)
    [ "$new" = 0 ] ||
        { problems=$((problems + 1)); echo "FAIL: [$label] the re-run created digests (run.json digests_new: $new)"; }
    [ "$(ls -A "$tmp/$label" | grep -c '^\.first\.tally-')" = 0 ] ||
        { problems=$((problems + 1)); echo "FAIL: [$label] temporary tree left beside DIR"; }

    # 2. fresh ledger, elsewhere, relative paths, another DIR name, TZ, locale
    for b in $BUNDLES; do
        ln -s "$b" "$tmp/$label/work/$(basename "$b")"
    done
    rel=
    for b in $BUNDLES; do rel="$rel $(basename "$b")"; done
    cp "$RATES" "$tmp/$label/work/card.csv"
    (
        cd "$tmp/$label/work" &&
        TZ=XST-14 LC_ALL=C.UTF-8 LANG=de_DE.UTF-8 \
            "$TALLY" --db fresh.db run --rates card.csv --as-of "$ASOF" --out reports-elsewhere $rel \
            </dev/null >/dev/null 2>../err3
    )
    rc3=$?
    [ "$rc3" = "$rc1" ] || { problems=$((problems + 1)); echo "FAIL: [$label] the fresh-ledger run exited $rc3, the first run $rc1: $(tail -2 "$tmp/$label/err3")"; }
    san_clean "$tmp/$label/err3" || problems=$((problems + 1))
    same_tree "$tmp/$label/first" "$tmp/$label/work/reports-elsewhere" ||
        { problems=$((problems + 1)); echo "FAIL: [$label] a fresh ledger gave other outputs (above)"; }
    note "[$label] exits $rc1 $rc2 $rc3; $(find "$tmp/$label/first" -type f | wc -l) files compared"
}

bundles_fixtures
check_round fixtures

# DIR's mode: a new one's follows the umask, as its files do; a re-run keeps
# the mode an admin gave it (the swap replaces the directory itself)
mode_of() { stat -c %a "$1"; }
( umask 077; "$TALLY" --db "$tmp/mode.db" run --rates "$RATES" --as-of "$ASOF" --out "$tmp/mode-out" \
    $BUNDLES </dev/null >/dev/null 2>&1 )
[ "$(mode_of "$tmp/mode-out")" = 700 ] && [ "$(mode_of "$tmp/mode-out/summary.csv")" = 600 ] ||
    { problems=$((problems + 1)); echo "FAIL: under umask 077, DIR is $(mode_of "$tmp/mode-out") and summary.csv $(mode_of "$tmp/mode-out/summary.csv") (expected 700 and 600)"; }
chmod 750 "$tmp/mode-out"
"$TALLY" --db "$tmp/mode.db" run --rates "$RATES" --as-of "$ASOF" --out "$tmp/mode-out" $BUNDLES \
    </dev/null >/dev/null 2>&1
[ "$(mode_of "$tmp/mode-out")" = 750 ] ||
    { problems=$((problems + 1)); echo "FAIL: a re-run turned DIR's mode 750 into $(mode_of "$tmp/mode-out")"; }

mkdir -p "$tmp/in"
if is_san; then
    bundles_gen "$tmp/in" 12 8000 300 40 gzip
else
    bundles_gen "$tmp/in" 20 20000 500 40 gzip
fi
[ "$EXPECT_RC" = 0 ] && check_round generated

[ "$problems" = 0 ] || fail "$problems problems (above)"
echo "ok"
