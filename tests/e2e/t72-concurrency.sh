#!/bin/sh
# t72-concurrency: one writer at a time (spec outputs.md "Command line":
# exit 75, "another run holds the database's lock").
#
# While a `tally run` is in its ingest stage (and, in a second round, in
# its report stage), a second `run`, `ingest`, `rates`, `report`, `notify`
# and `balance` on the same ledger each exit 75 at once (under a second),
# with a message, write nothing (the second run's DIR is not created); the
# first run is still running when they are refused, then completes with its
# normal exit and the reports of an undisturbed run.  A first load with an
# outside sqlite3 reader open still loads (in WAL mode); an outside writer
# holding SQLite's lock past the busy timeout makes a run exit 75 too.
# shellcheck disable=SC2046,SC2086  # $BUNDLES and result lines split on purpose
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/common.sh"
e2e_init t72

mkdir -p "$tmp/in"
# big enough that the first run is still busy while six commands are refused
bundles_gen "$tmp/in" 20 60000 1000 40
note "input: $BUNDLE_KIND"
set -- $BUNDLES
first_bundle=$1

"$TALLY" --db "$tmp/ref.db" run --rates "$RATES" --as-of "$ASOF" --out "$tmp/ref" $BUNDLES \
    </dev/null >/dev/null 2>"$tmp/stderr"
ref_rc=$?
[ "$ref_rc" = "$EXPECT_RC" ] || { cat "$tmp/stderr"; fail "reference run exited $ref_rc"; }

problems=0
for stage in ingest report; do
    db=$tmp/$stage.db
    out=$tmp/out-$stage
    rm_db "$db"
    "$PY" "$lib/overlap.py" --at "$stage" --log "$tmp/log" -- \
        "$TALLY" --db "$db" run --rates "$RATES" --as-of "$ASOF" --out "$out" $BUNDLES \
        ::: "$TALLY" --db "$db" run --rates "$RATES" --as-of "$ASOF" --out "$tmp/second" $BUNDLES \
        ::: "$TALLY" --db "$db" ingest "$first_bundle" \
        ::: "$TALLY" --db "$db" rates "$RATES" \
        ::: "$TALLY" --db "$db" report --as-of "$ASOF" --out "$tmp/second" \
        ::: "$TALLY" --db "$db" notify --as-of "$ASOF" --outbox "$tmp/second" \
        ::: "$TALLY" --db "$db" balance acct-000001 --as-of "$ASOF" \
        >"$tmp/result"
    orc=$?
    [ "$orc" = 0 ] || { cat "$tmp/result" "$tmp/log.0"; fail "[$stage] the first run never reached stage $stage"; }
    names="run ingest rates report notify balance"
    while read -r kind n rc secs running; do
        [ "$kind" = second ] || continue
        set -- $names; shift $((n - 1)); name=$1
        what="[$stage] second '$name'"
        if [ "$rc" != 75 ]; then
            problems=$((problems + 1)); echo "FAIL: $what exited $rc (expected 75): $(tail -2 "$tmp/log.$n")"
        fi
        if ! "$PY" -c "import sys; sys.exit(0 if float(sys.argv[1]) < 1.0 else 1)" "$secs"; then
            problems=$((problems + 1)); echo "FAIL: $what took ${secs}s to give up (must be at once)"
        fi
        if [ "$running" != 1 ]; then
            problems=$((problems + 1)); echo "FAIL: $what: the first run had already finished (nothing was tested; make the input bigger)"
        fi
        grep -q '^tally: .*lock' "$tmp/log.$n" ||
            { problems=$((problems + 1)); echo "FAIL: $what: no message about the lock: $(head -2 "$tmp/log.$n")"; }
        last_line_ok "$tmp/log.$n" || problems=$((problems + 1))
        san_clean "$tmp/log.$n" || { problems=$((problems + 1)); echo "FAIL: $what: sanitizer report"; }
        note "$what: exit $rc in ${secs}s"
    done <"$tmp/result"
    [ -e "$tmp/second" ] && { problems=$((problems + 1)); echo "FAIL: [$stage] a refused command wrote '$tmp/second'"; rm -rf "$tmp/second"; }
    set -- $(grep '^first' "$tmp/result")
    if [ "$2" != "$ref_rc" ]; then
        problems=$((problems + 1)); echo "FAIL: [$stage] the first run exited $2 (reference $ref_rc): $(tail -3 "$tmp/log.0")"
    fi
    san_clean "$tmp/log.0" || { problems=$((problems + 1)); echo "FAIL: [$stage] sanitizer report in the first run"; }
    same_tree "$tmp/ref" "$out" ||
        { problems=$((problems + 1)); echo "FAIL: [$stage] the first run's reports differ from an undisturbed run (above)"; }
    ledger_ok "$db" || problems=$((problems + 1))
    note "[$stage] first run: exit $2 in ${3}s"
    # the lock is released: a writer now gets in
    "$TALLY" --db "$db" ingest "$first_bundle" </dev/null >/dev/null 2>"$tmp/stderr"; rc=$?
    [ "$rc" = 0 ] || { problems=$((problems + 1)); echo "FAIL: [$stage] ingest after the run exited $rc: $(tail -2 "$tmp/stderr")"; }
done

# an outside reader (a sqlite3 shell) open during a first load: the load
# still happens, in WAL mode instead of the rollback journal (ledger.c)
if command -v sqlite3 >/dev/null 2>&1; then
    db=$tmp/reader.db
    "$TALLY" --db "$db" rates "$RATES" </dev/null >/dev/null 2>&1
    { echo 'SELECT count(*) FROM rates;'; sleep 3; } | sqlite3 "$db" >/dev/null &
    reader=$!
    sleep 0.5
    "$TALLY" --db "$db" ingest "$first_bundle" </dev/null >/dev/null 2>"$tmp/stderr"; rc=$?
    wait "$reader"
    case $rc in 0|3) ;; *) problems=$((problems + 1)); echo "FAIL: first load beside a reader exited $rc: $(tail -2 "$tmp/stderr")" ;; esac
    [ "$(sqlite3 "$db" 'SELECT count(*) FROM bundles')" = 1 ] ||
        { problems=$((problems + 1)); echo "FAIL: first load beside a reader loaded nothing"; }
    [ "$(sqlite3 "$db" 'PRAGMA journal_mode')" = wal ] ||
        { problems=$((problems + 1)); echo "FAIL: the ledger is not in WAL mode after the load"; }
fi

# an outside writer (a sqlite3 shell in a transaction) holding SQLite's own
# lock past the busy timeout: also 75 ("try again later"), not 74, with
# nothing written; once it is gone, the same run completes
if command -v sqlite3 >/dev/null 2>&1; then
    db=$tmp/writer.db
    out=$tmp/out-writer
    "$TALLY" --db "$db" rates "$RATES" </dev/null >/dev/null 2>&1
    { echo 'BEGIN IMMEDIATE; CREATE TABLE outside(x);'; sleep 9; echo 'ROLLBACK;'; } | sqlite3 "$db" >/dev/null &
    writer=$!
    sleep 0.5
    "$TALLY" --db "$db" run --rates "$RATES" --as-of "$ASOF" --out "$out" $BUNDLES \
        </dev/null >/dev/null 2>"$tmp/stderr"; rc=$?
    kill -0 "$writer" 2>/dev/null ||
        { problems=$((problems + 1)); echo "FAIL: the outside writer was gone before the run gave up (nothing was tested)"; }
    wait "$writer"
    [ "$rc" = 75 ] ||
        { problems=$((problems + 1)); echo "FAIL: run beside an outside writer exited $rc (expected 75): $(tail -2 "$tmp/stderr")"; }
    grep -q "^tally: run: ledger '.*': database is locked (another program holds the ledger; try again later)$" "$tmp/stderr" ||
        { problems=$((problems + 1)); echo "FAIL: run beside an outside writer: no message about the lock: $(head -2 "$tmp/stderr")"; }
    [ -e "$out" ] && { problems=$((problems + 1)); echo "FAIL: run beside an outside writer wrote '$out'"; }
    [ "$(sqlite3 "$db" 'SELECT count(*) FROM bundles')" = 0 ] ||
        { problems=$((problems + 1)); echo "FAIL: run beside an outside writer loaded a bundle"; }
    "$TALLY" --db "$db" run --rates "$RATES" --as-of "$ASOF" --out "$out" $BUNDLES \
        </dev/null >/dev/null 2>"$tmp/stderr"; rc=$?
    [ "$rc" = "$ref_rc" ] ||
        { problems=$((problems + 1)); echo "FAIL: run after the outside writer exited $rc: $(tail -2 "$tmp/stderr")"; }
    same_tree "$tmp/ref" "$out" ||
        { problems=$((problems + 1)); echo "FAIL: run after the outside writer: reports differ from an undisturbed run (above)"; }
fi

[ "$problems" = 0 ] || fail "$problems problems (above)"
echo "ok"
