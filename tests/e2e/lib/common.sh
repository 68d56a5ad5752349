# common.sh — shared helpers of the robustness tests (t70–t74), sourced by
# POSIX sh.  Expects $here (the tests/e2e directory) to be set; sets $root
# and $TALLY when the runner did not export them.
#
#   e2e_init NAME       make $tmp (removed on exit, and the TMPDIR); set $PY
#   is_san              true when $TALLY is the ASan/UBSan build
#   fail MSG            print "FAIL: MSG" and exit 1
#   note MSG            print MSG (shown by the runner on failure only)
#   rm_db DB            remove a ledger and its -wal/-shm/-journal/.lock files
#   bundles_gen DIR ... generated bundles (or the fixtures), see below
#   bundles_fixtures    the demo fixtures
#   same_tree A B       byte-compare two report directories, run.json aside
#   only_entry PARENT BASE   PARENT holds BASE (or nothing) and no temp tree
#   ledger_ok DB        PRAGMA integrity_check says ok
#   san_clean FILE      FILE (a stderr) holds no sanitizer report
#   last_line_ok FILE   the last line of FILE is a non-empty "tally: " line

# shellcheck disable=SC2034  # the variables set here are the callers'
set -u
: "${root:=$(cd "$here/../.." && pwd)}"
: "${TALLY:=$root/tally}"
lib=$here/lib

fail() {
    echo "FAIL: $*"
    exit 1
}

note() {
    echo "$*"
}

is_san() {
    case $TALLY in
    */san/*) return 0 ;;
    esac
    return 1
}

e2e_init() {
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/tally-$1.XXXXXX") || exit 1
    # tally's workbook scratch files too: a run killed between libxlsxwriter's
    # creating one and unlinking it leaves it behind, here and not in /dev/shm
    TMPDIR=$tmp
    export TMPDIR
    # a test may add its own cleanup (an unmount) in $e2e_cleanup
    e2e_cleanup=:
    trap 'eval "$e2e_cleanup"; rm -rf "$tmp"' EXIT
    trap 'exit 1' INT TERM HUP
    [ -x "$TALLY" ] || fail "no tally binary at '$TALLY'"
    command -v python3 >/dev/null 2>&1 || fail "python3 is needed"
    # the interpreter itself, not a version manager's shim (saves ~60 ms a call)
    PY=$(python3 -c 'import sys; print(sys.executable)')
}

rm_db() {
    rm -f "$1" "$1-wal" "$1-shm" "$1-journal" "$1.lock"
}

# bundles_fixtures: the three demo bundles (exit 3: two rows quarantined).
# Sets RATES, BUNDLES (space separated), ASOF, EXPECT_RC.
bundles_fixtures() {
    RATES=$root/fixtures/rates.csv
    BUNDLES="$root/fixtures/gale.tar.gz $root/fixtures/agent-platform $root/fixtures/process.zip"
    ASOF=2026-11-05T00:00:00Z
    EXPECT_RC=3
    BUNDLE_KIND=fixtures
}

# bundles_gen DIR ACCOUNTS RUNS DEPLOYMENTS DAYS [GZIP]: two bundles from
# scripts/gen-bundle (the first and the second half of the days, so ingest
# commits twice), rates in DIR/rates.csv; as-of the day after the last.
# Falls back to the fixtures when gen-bundle is missing or broken.
bundles_gen() {
    _gen=$root/scripts/gen-bundle
    _half=$(($5 / 2))
    if [ -x "$_gen" ] && "$_gen" --help >/dev/null 2>&1 &&
        "$_gen" --accounts "$2" --runs "$3" --deployments "$4" --days "$5" --seed 7 \
            --from-day 0 --to-day $((_half - 1)) ${6:+--gzip} "$1/day-a" >"$1/gen.log" 2>&1 &&
        "$_gen" --accounts "$2" --runs "$3" --deployments "$4" --days "$5" --seed 7 \
            --from-day "$_half" --to-day $(($5 - 1)) ${6:+--gzip} "$1/day-b" >>"$1/gen.log" 2>&1 &&
        [ -s "$1/day-a/rates.csv" ]; then
        mv "$1/day-a/rates.csv" "$1/rates.csv"
        rm -f "$1/day-b/rates.csv"
        RATES=$1/rates.csv
        BUNDLES="$1/day-a $1/day-b"
        ASOF=$("$PY" -c 'import datetime,sys; d=datetime.date(2026,10,1)+datetime.timedelta(days=int(sys.argv[1])); print(d.isoformat()+"T00:00:00Z")' "$5")
        EXPECT_RC=0
        BUNDLE_KIND="gen-bundle ($2 accounts, $3 runs, $4 deployments, $5 days)"
    else
        note "note: scripts/gen-bundle unavailable; using fixtures/"
        bundles_fixtures
    fi
}

# same_tree A B: every file of A and B (run.json aside) byte for byte.
same_tree() {
    if [ ! -d "$1" ] || [ ! -d "$2" ]; then
        echo "    '$1' or '$2' is not a directory"
        return 1
    fi
    if ! diff -rq -x run.json "$1" "$2" >"$tmp/.diff" 2>&1; then
        sed 's/^/    /' "$tmp/.diff" | head -10
        return 1
    fi
    [ -f "$1/run.json" ] || { echo "    no run.json in '$1'"; return 1; }
    return 0
}

# only_entry PARENT BASE: nothing but BASE (when present) in PARENT.
only_entry() {
    _oe=$(ls -A "$1" | grep -vx "$2")
    if [ -n "$_oe" ]; then
        echo "    left beside '$2': $(echo $_oe)"
        return 1
    fi
    return 0
}

ledger_ok() {
    command -v sqlite3 >/dev/null 2>&1 || return 0
    _r=$(sqlite3 "$1" 'PRAGMA integrity_check' 2>&1 </dev/null)
    if [ "$_r" != ok ]; then
        echo "    integrity_check of '$1': $_r"
        return 1
    fi
    return 0
}

san_clean() {
    if grep -E -q 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: (Address|Undefined)' "$1"; then
        grep -E -A12 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$1" | head -24 | sed 's/^/    /'
        return 1
    fi
    return 0
}

last_line_ok() {
    _l=$(tail -n 1 "$1")
    case $_l in
    "tally: "?*) return 0 ;;
    esac
    echo "    last stderr line is not a 'tally: ' summary: '$_l'"
    return 1
}
