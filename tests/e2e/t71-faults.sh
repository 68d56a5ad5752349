#!/bin/sh
# t71-faults: output and allocation faults end in a clean error, never a
# crash, a half-written DIR or a damaged ledger (spec outputs.md "Command
# line" exit 73/74 and "Files under --out DIR"; semantics.md §9).
#
# (a) DIR on a full disk: DIR's parent is a small tmpfs holding a complete
#     earlier run; the free space is cut to 0, 4k, 16k, 32k, 64k, … 544k
#     so the next run (a later as-of) fails at different points.  Each must exit 73 or 74
#     with a one-line "No space left on device" message, leave the earlier
#     reports byte-identical and no temporary tree, and keep the ledger
#     sound; with the space back, a re-run gives what a clean ledger gives.
#     Also: stdout on /dev/full exits 73 or 74 with a message.
# (b) a DIR whose parent is missing, is a file, or is read-only: exit 73
#     with a message naming DIR; previous reports the user cannot delete
#     (a run by hand as root, then the service user): a warning names them.
# (c) TALLY_FAULT_ALLOC=N for N = 1, 2, 3, … (every third past 1,200, and a
#     stride on the larger input; jansson allocates through it too): exit
#     74 (or the normal exit once N is past the last allocation), no crash,
#     no sanitizer or leak report, DIR absent or complete; the next normal
#     run on the same ledger gives the reference (under ASan for every 8th
#     N only: the normal build checks every N it tries).
# (d) TALLY_FAULT_IO=N, the same loop over the ledger's I/O calls (SQLite
#     reads, writes, truncates and syncs through pipeline/iofault.c).
# shellcheck disable=SC2046,SC2086  # $BUNDLES and result lines split on purpose
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/common.sh"
e2e_init t71

problems=0
problem() {
    problems=$((problems + 1))
    echo "FAIL: $*"
}

tally_run() {
    # tally_run DB OUT ASOF: the fixtures' run, stderr in $tmp/stderr
    "$TALLY" --db "$1" run --rates "$RATES" --as-of "$3" --out "$2" $BUNDLES \
        </dev/null >/dev/null 2>"$tmp/stderr"
}

bundles_fixtures
asof1=2026-10-20T00:00:00Z
asof2=$ASOF

# clean reference: the same two runs (as-of 1, then as-of 2) on a fresh ledger
tally_run "$tmp/ref.db" "$tmp/ref1" "$asof1"; rc1=$?
tally_run "$tmp/ref.db" "$tmp/ref2" "$asof2"; rc2=$?
[ "$rc1" = 3 ] && [ "$rc2" = 3 ] || { cat "$tmp/stderr"; fail "reference runs exited $rc1, $rc2 (expected 3, 3)"; }
san_clean "$tmp/stderr" || fail "sanitizer report in a reference run"

# ---------------------------------------------------------------- (a) ENOSPC
full=$tmp/full
mkdir -p "$full"
if mount -t tmpfs -o size=2m,mode=0755 tally-t71 "$full" 2>"$tmp/mount.err"; then
    e2e_cleanup='umount "$full" 2>/dev/null || umount -l "$full" 2>/dev/null'
    db=$tmp/a.db
    out=$full/out
    tally_run "$db" "$out" "$asof1"; rc=$?
    [ "$rc" = 3 ] || { cat "$tmp/stderr"; fail "(a) first run onto the tmpfs exited $rc"; }
    same_tree "$tmp/ref1" "$out" || fail "(a) first run onto the tmpfs differs from the reference"
    cp -a "$out" "$tmp/prev"
    nospc= nospc_eg= raw= raw_eg= results=
    step=32768
    is_san && step=65536
    for free in 0 4096 16384 $(seq "$step" "$step" 557056) 1048576; do
        rm -f "$full/filler"
        # fill the tmpfs, then give back FREE bytes
        dd if=/dev/zero of="$full/filler" bs=64k 2>/dev/null
        "$PY" -c 'import os,sys; p=sys.argv[1]; os.truncate(p, max(0, os.path.getsize(p) - int(sys.argv[2])))' \
            "$full/filler" "$free"
        tally_run "$db" "$out" "$asof2"; rc=$?
        what="(a) run with ${free} bytes free"
        san_clean "$tmp/stderr" || problem "$what: sanitizer report"
        case $rc in
        73 | 74)
            if ! grep -q '^tally: .*No space left on device' "$tmp/stderr"; then
                nospc="$nospc $free"
                [ -n "$nospc_eg" ] || nospc_eg=$(grep '^tally: .*cannot' "$tmp/stderr" | head -1)
            fi
            if grep -v -q '^tally: ' "$tmp/stderr"; then
                raw="$raw $free"
                [ -n "$raw_eg" ] || raw_eg=$(grep -v '^tally: ' "$tmp/stderr" | head -2)
            fi
            same_tree "$tmp/prev" "$out" || problem "$what: the earlier reports were changed (above)"
            # the summary counts the reports DIR holds: none of this run's
            tail -n 1 "$tmp/stderr" | grep -q " 0 accounts reported, 0 digests" ||
                problem "$what: the summary counts reports that did not land: $(tail -n 1 "$tmp/stderr")"
            ;;
        3)
            # enough space after all: then it must be the complete reports
            same_tree "$tmp/ref2" "$out" || problem "$what: exit 3 but DIR differs from a clean run (truncated output?)"
            rm -rf "$tmp/prev" && cp -a "$out" "$tmp/prev"
            ;;
        *)
            problem "$what: exit $rc (expected 73 or 74): $(tail -3 "$tmp/stderr")"
            ;;
        esac
        last_line_ok "$tmp/stderr" || problem "$what: no summary line"
        only_entry "$full" out >/dev/null || {
            ls -A "$full" | grep -v -x -e out -e filler >"$tmp/extra"
            [ -s "$tmp/extra" ] && problem "$what: left beside DIR: $(cat "$tmp/extra" | tr '\n' ' ')"
        }
        ledger_ok "$db" || problem "$what: ledger damaged"
        results="$results $free:$rc"
    done
    note "(a) free bytes:exit —$results"
    [ -z "$nospc" ] || problem "(a) with$nospc bytes free, tally's error does not say 'No space left on device', e.g.: $nospc_eg"
    [ -z "$raw" ] || problem "(a) with$raw bytes free, stderr has lines that are not one-line 'tally: ' messages, e.g.:
$raw_eg"
    rm -f "$full/filler"
    tally_run "$db" "$out" "$asof2"; rc=$?
    [ "$rc" = 3 ] || problem "(a) re-run with space exited $rc: $(tail -3 "$tmp/stderr")"
    same_tree "$tmp/ref2" "$out" || problem "(a) re-run with space differs from a clean run (above)"
    only_entry "$full" out || problem "(a) temporary tree left after the re-run with space"
    ledger_ok "$db" || problem "(a) ledger damaged after the re-run"
    # a full scratch directory (report.scratch_dir): libxlsxwriter does not
    # check its writes there, so its workbooks came out cut short with
    # success; the read-back finds them: 73, and no DIR
    mkdir -p "$full/scratch"
    printf '[report]\nscratch_dir = %s/scratch\n' "$full" >"$tmp/scratch.conf"
    dd if=/dev/zero of="$full/filler" bs=4k 2>/dev/null
    "$TALLY" --config "$tmp/scratch.conf" --db "$db" run --rates "$RATES" --as-of "$asof2" \
        --out "$tmp/scratch-out" $BUNDLES </dev/null >/dev/null 2>"$tmp/stderr"
    rc=$?
    [ "$rc" = 73 ] && grep -q "^tally: run: cannot write '.*\.xlsx': its part .* came out cut short" "$tmp/stderr" ||
        problem "(a) workbooks over a full scratch directory: exit $rc: $(head -2 "$tmp/stderr")"
    [ -e "$tmp/scratch-out" ] && problem "(a) workbooks over a full scratch directory: DIR was written"
    rm -rf "$full/filler" "$full/scratch"
    # ... and one that fills on the way: finance.xlsx (400 accounts) copies
    # its rows from one scratch file to another, the first one's space comes
    # back, and the part ends well formed but short of rows
    mkdir -p "$full/scratch"
    "$root/scripts/gen-bundle" --accounts 400 --runs 20000 --deployments 2000 --days 30 --seed 1 \
        "$tmp/big" >/dev/null 2>&1 || fail "gen-bundle failed"
    rm_db "$tmp/big.db"
    "$TALLY" --db "$tmp/big.db" ingest "$tmp/big" </dev/null >/dev/null 2>&1
    "$TALLY" --db "$tmp/big.db" rates "$tmp/big/rates.csv" </dev/null >/dev/null 2>&1
    "$TALLY" --config "$tmp/scratch.conf" --db "$tmp/big.db" report --out "$tmp/big-out" \
        </dev/null >/dev/null 2>"$tmp/stderr"
    rc=$?
    [ "$rc" = 73 ] && grep -q "finance.xlsx': its part xl/worksheets/sheet.*\.xml came out cut short" "$tmp/stderr" ||
        problem "(a) a scratch directory that fills on the way: exit $rc: $(head -2 "$tmp/stderr")"
    rm -rf "$full/scratch" "$tmp/big" "$tmp/big-out"
    # ingest --rejects FILE on a full disk: FILE keeps what it held, nothing is
    # left beside it (a list of 200 rejects needs more than the page the old
    # FILE frees when it is truncated)
    mkdir -p "$tmp/badrows"
    { echo "event_id,account_id,ts,kind,resource_id"
      seq 1 200 | sed 's/.*/r-&,acct-1,not-a-time,agent,a-1/'; } >"$tmp/badrows/runs.csv"
    echo "the previous list" >"$full/rejects.csv"
    dd if=/dev/zero of="$full/filler" bs=4k 2>/dev/null
    rm_db "$tmp/rj.db"
    "$TALLY" --db "$tmp/rj.db" ingest --rejects "$full/rejects.csv" "$tmp/badrows" </dev/null >/dev/null 2>"$tmp/stderr"
    rc=$?
    case $rc in 73 | 74) ;; *) problem "(a) ingest --rejects FILE on a full disk: exit $rc (expected 73 or 74)" ;; esac
    [ "$(cat "$full/rejects.csv")" = "the previous list" ] ||
        problem "(a) ingest --rejects FILE on a full disk: FILE changed: $(head -c 100 "$full/rejects.csv")"
    ls -A "$full" | grep -q '\.tmp$' && problem "(a) ingest --rejects FILE on a full disk: a temporary file is left"
    rm -f "$full/filler" "$full/rejects.csv"
    umount "$full" || fail "cannot unmount '$full'"
    e2e_cleanup=:
else
    echo "SKIP (a) full-disk DIR: cannot mount a tmpfs: $(cat "$tmp/mount.err")"
fi

# stdout on a full device
if [ -w /dev/full ]; then
    for cmd in "--help" "run --help" "config" "balance gale-northwind --as-of $asof2"; do
        "$TALLY" --db "$tmp/ref.db" $cmd </dev/null >/dev/full 2>"$tmp/stderr"; rc=$?
        case $rc in
        73 | 74) grep -q '^tally: ' "$tmp/stderr" || problem "'tally $cmd >/dev/full': exit $rc without a message" ;;
        *) problem "'tally $cmd >/dev/full' exited $rc (expected 73 or 74)" ;;
        esac
    done
fi

# ------------------------------------------------------------ (b) bad parent
db=$tmp/b.db
tally_run "$db" "$tmp/no/such/dir/out" "$asof2"; rc=$?
[ "$rc" = 73 ] || problem "(b) missing parent: exit $rc (expected 73)"
grep -q "no/such/dir" "$tmp/stderr" || problem "(b) missing parent: no message naming it: $(head -2 "$tmp/stderr")"
[ -e "$tmp/no" ] && problem "(b) missing parent: it was created"
: >"$tmp/plainfile"
tally_run "$db" "$tmp/plainfile/out" "$asof2"; rc=$?
[ "$rc" = 73 ] || problem "(b) parent is a file: exit $rc (expected 73)"
grep -q "plainfile" "$tmp/stderr" || problem "(b) parent is a file: no message naming it"
mkdir -p "$tmp/ro"
if mount -t tmpfs -o ro,size=64k tally-t71ro "$tmp/ro" 2>/dev/null; then
    e2e_cleanup='umount "$tmp/ro" 2>/dev/null'
    tally_run "$db" "$tmp/ro/out" "$asof2"; rc=$?
    [ "$rc" = 73 ] || problem "(b) read-only parent: exit $rc (expected 73)"
    grep -q "ro/out" "$tmp/stderr" || problem "(b) read-only parent: no message naming DIR: $(head -2 "$tmp/stderr")"
    umount "$tmp/ro"
    e2e_cleanup=:
else
    note "(b) read-only parent: no tmpfs; /proc instead"
    tally_run "$db" "/proc/tally-t71-out" "$asof2"; rc=$?
    [ "$rc" = 73 ] || problem "(b) parent /proc: exit $rc (expected 73)"
fi
last_line_ok "$tmp/stderr" || problem "(b) no summary line"
ledger_ok "$db" || problem "(b) ledger damaged"
# Reports left by a run as root, then a run as the service user: the swap
# works, but the old tree cannot be deleted, and a warning says where it is.
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null && id nobody >/dev/null 2>&1; then
    mkdir -p "$tmp/own"
    tally_run "$tmp/own/o.db" "$tmp/own/out" "$asof2"
    chown nobody "$tmp/own" "$tmp/own/o.db"*
    chmod 755 "$tmp"
    setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups \
        "$TALLY" --db "$tmp/own/o.db" run --rates "$RATES" --as-of "$asof2" --out "$tmp/own/out" \
        $BUNDLES </dev/null >/dev/null 2>"$tmp/stderr"
    rc=$?
    [ "$rc" = 3 ] || problem "(b) old reports of another user: exit $rc (expected 3): $(tail -1 "$tmp/stderr")"
    left=$(ls -A "$tmp/own" | grep '^\.out\.tally-')
    [ -n "$left" ] && ! grep -q "warning: cannot remove the previous reports '.*$left'" "$tmp/stderr" &&
        problem "(b) old reports of another user: '$left' left beside DIR without a warning"
    last_line_ok "$tmp/stderr" || problem "(b) old reports of another user: no summary line last"
else
    note "(b) old reports of another user: skipped (needs root, setpriv and user nobody)"
fi

# --------------------------------------------------------- (c) alloc faults
# fault_loop NAME RC START STRIDE_FROM STRIDE END FOLLOW: N = START.., every
# N up to STRIDE_FROM, then every STRIDE; ends at END, or (END = 0) after
# three successes in a row.  The normal run that follows a fault is done for
# every FOLLOW-th N (and after every unexpected success).  Uses RATES,
# BUNDLES, ASOF, $refdir.
fault_loop() {
    name=$1 want=$2 n=$3 from=$4 stride=$5 end=$6 follow=$7
    ok_row=0 faults=0 succeeded=0 nomsg=0 shown=0 badn=
    while :; do
        [ "$end" -gt 0 ] && [ "$n" -gt "$end" ] && break
        [ "$end" = 0 ] && [ "$ok_row" -ge 3 ] && break
        rm_db "$tmp/c.db"
        rm -rf "$tmp/c"
        mkdir -p "$tmp/c"
        env "$FAULT=$n" "$TALLY" --db "$tmp/c.db" run --rates "$RATES" --as-of "$ASOF" \
            --out "$tmp/c/out" $EXTRA $BUNDLES </dev/null >/dev/null 2>"$tmp/stderr"
        rc=$?
        what="($part) $name $FAULT=$n"
        bad=
        if ! san_clean "$tmp/stderr" >"$tmp/san"; then
            bad="sanitizer report (exit $rc):
$(grep -v -e '^ *$' -e '#0 .*libsanitizer' "$tmp/san" | head -7)"
        elif [ "$rc" = 74 ]; then
            faults=$((faults + 1)); ok_row=0
            grep -q "$FAULT_MSG" "$tmp/stderr" || nomsg=$((nomsg + 1))
            if [ -e "$tmp/c/out" ] && ! same_tree "$refdir" "$tmp/c/out" >/dev/null; then
                bad="exit 74 but DIR is there and incomplete"
            fi
            last_line_ok "$tmp/stderr" >/dev/null || bad="exit 74 without a summary line"
        elif [ "$rc" = "$want" ]; then
            succeeded=$((succeeded + 1)); ok_row=$((ok_row + 1))
            same_tree "$refdir" "$tmp/c/out" >/dev/null || bad="exit $rc but DIR differs from the reference"
        else
            ok_row=0
            bad="exit $rc (expected 74): $(grep -v '^    #' "$tmp/stderr" | tail -2)"
        fi
        [ -z "$bad" ] && ! only_entry "$tmp/c" out >/dev/null && bad="temporary tree left: $(ls -A "$tmp/c" | tr '\n' ' ')"
        if [ -z "$bad" ] && { [ $((n % follow)) = 0 ] || [ "$rc" != 74 ]; }; then
            # the ledger is never damaged: a normal run completes it
            "$TALLY" --db "$tmp/c.db" run --rates "$RATES" --as-of "$ASOF" --out "$tmp/c/out" \
                $EXTRA $BUNDLES </dev/null >/dev/null 2>"$tmp/stderr2"
            rc2=$?
            if [ "$rc2" != "$want" ]; then
                bad="the following normal run exited $rc2: $(tail -2 "$tmp/stderr2")"
            elif ! same_tree "$refdir" "$tmp/c/out" >"$tmp/diff2"; then
                bad="the following normal run differs from the reference: $(head -3 "$tmp/diff2")"
            elif ! only_entry "$tmp/c" out >/dev/null; then
                bad="temporary tree left after the following normal run"
            elif ! san_clean "$tmp/stderr2" >"$tmp/san"; then
                bad="sanitizer report in the following normal run: $(cat "$tmp/san")"
            elif [ $((n % (10 * follow))) = 0 ] && ! ledger_ok "$tmp/c.db" >/dev/null; then
                bad="ledger damaged"
            fi
        fi
        if [ -n "$bad" ]; then
            problems=$((problems + 1)); shown=$((shown + 1)); badn="$badn $n"
            [ "$shown" -le 5 ] && echo "FAIL: $what: $bad"
        fi
        if [ "$n" -lt "$from" ]; then n=$((n + 1)); else n=$((n + stride)); fi
        # a stride ends on END itself
        [ "$end" -gt 0 ] && [ "$n" -gt "$end" ] && [ "$((n - stride))" -lt "$end" ] && n=$end
    done
    [ "$shown" -gt 5 ] && echo "FAIL: ($part) $name: $((shown - 5)) more failing N not shown"
    [ -n "$badn" ] && echo "FAIL: ($part) $name: bad N:$badn"
    [ "$nomsg" = 0 ] || { problems=$((problems + 1)); echo "FAIL: ($part) $name: $nomsg runs failed without '$FAULT_MSG'"; }
    note "($part) $name: $faults runs failed with 74 ($nomsg without '$FAULT_MSG'), $succeeded completed, $shown bad (last N $n)"
}

# total_calls: the smallest N of $FAULT that lets the run complete (binary search)
total_calls() {
    lo=0 hi=1000000
    while [ $((hi - lo)) -gt 1 ]; do
        mid=$(((lo + hi) / 2))
        rm_db "$tmp/s.db"; rm -rf "$tmp/s"
        env "$FAULT=$mid" "$TALLY" --db "$tmp/s.db" run --rates "$RATES" --as-of "$ASOF" \
            --out "$tmp/s" $EXTRA $BUNDLES </dev/null >/dev/null 2>&1
        if [ $? = 74 ]; then lo=$mid; else hi=$mid; fi
    done
    echo "$hi"
}

# example_reference: the small input of a part, every N: the spec's
# gale-free-grant example (or, in a checkout without ../shared, the
# fixtures, three times the allocations: every N of fewer); sets RATES,
# BUNDLES, ASOF, want, EVERY and STRIDE (every N up to EVERY, then every
# STRIDE-th) and refdir, the reference run's DIR
example=$root/../shared/spec/examples/gale-free-grant
EXTRA=
example_reference() {
    if [ -d "$example/bundle" ]; then
        RATES=$example/rates.csv BUNDLES=$example/bundle ASOF=2026-10-10T00:00:00Z want=0
        EVERY=1200 STRIDE=3
    else
        bundles_fixtures; want=3
        EVERY=600 STRIDE=10
    fi
    refdir=$tmp/${part}ref
    rm_db "$tmp/${part}ref.db"
    "$TALLY" --db "$tmp/${part}ref.db" run --rates "$RATES" --as-of "$ASOF" --out "$refdir" $BUNDLES \
        </dev/null >/dev/null 2>"$tmp/stderr"
    [ $? = "$want" ] || { cat "$tmp/stderr"; fail "($part) reference run failed"; }
}

part=c FAULT=TALLY_FAULT_ALLOC FAULT_MSG='out of memory'
example_reference
# every N of the first EVERY (the ledger, the bundle, the reconcile), then
# every STRIDE-th: jansson's allocations (items, run.json) tripled the count
if is_san; then
    fault_loop example "$want" 1 "$EVERY" "$STRIDE" 0 8
else
    fault_loop example "$want" 1 "$EVERY" "$STRIDE" 0 1
fi

# larger input, strided: the fixtures (tar.gz, zip, quarantine, 5 digests)
bundles_fixtures
refdir=$tmp/ref2x
rm_db "$tmp/ref2x.db"
tally_run "$tmp/ref2x.db" "$refdir" "$ASOF" || :
total=$(total_calls)
note "(c) fixtures: $total allocations in a complete run"
if is_san; then
    fault_loop fixtures 3 1 1 $((total / 10 + 1)) "$total" 1
else
    fault_loop fixtures 3 1 1 $((total / 60 + 1)) "$total" 1
fi

# --------------------------------------------------------- (d) SQLite I/O faults
# TALLY_FAULT_IO=N (pipeline/iofault.h): the ledger's Nth read, write,
# truncate or sync fails, and every later one, as a dying disk does: exit
# 74 naming the ledger, no crash or leak, DIR absent or complete, and the
# ledger sound: the next normal run recovers it and gives the reference.
part=d FAULT=TALLY_FAULT_IO FAULT_MSG="ledger '.*': .*I/O error"
example_reference
total=$(total_calls)
note "(d) example: $total ledger I/O calls in a complete run"
if is_san; then
    fault_loop example "$want" 1 1 $((total / 40 + 1)) "$total" 1
else
    fault_loop example "$want" 1 1 $((total / 150 + 1)) "$total" 1
fi
# the fixtures: bulk loads, which leave WAL for a rollback journal and come back
bundles_fixtures
refdir=$tmp/ref2x
total=$(total_calls)
note "(d) fixtures: $total ledger I/O calls in a complete run"
if is_san; then
    fault_loop fixtures 3 1 1 $((total / 15 + 1)) "$total" 1
else
    fault_loop fixtures 3 1 1 $((total / 60 + 1)) "$total" 1
fi

[ "$problems" = 0 ] || fail "$problems problems (above)"
echo "ok"
