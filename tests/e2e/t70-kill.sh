#!/bin/sh
# t70-kill: a run killed at any instant and run again gives the outputs of
# an uninterrupted run, and DIR never holds a partial set (spec semantics.md
# §9 "Crash-safe", outputs.md "Files under --out DIR").
#
# One uninterrupted reference run into a fresh ledger (traced: the stage
# offsets come from the progress lines tally prints when stderr is a
# terminal).  Then, each time into a fresh ledger: start the same run,
# SIGKILL it (after delays spread over the whole reference duration, and at
# points inside each stage: rates, ingest, reconcile, report, notify), check
# that DIR is absent or byte-identical to the reference, run again to
# completion and compare every file of DIR (run.json aside; outbox/ and
# notifications.csv included), the exit status, the ledger's integrity and
# that no temporary tree is left beside DIR.  Every fourth iteration is
# killed twice before the completing run.  Last, with DIR complete, re-runs
# at the same as-of are killed: DIR must stay byte-identical throughout.
# shellcheck disable=SC2046,SC2086  # $BUNDLES and result lines split on purpose
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/common.sh"
e2e_init t70

if is_san; then
    uniform=12          # kills spread over 0..duration
    fracs="0.25 0.75"   # kill points inside each stage (fraction of it)
    rekills=3
else
    uniform=18
    fracs="0.2 0.7"
    rekills=5
fi

mkdir -p "$tmp/in"
if is_san; then
    bundles_gen "$tmp/in" 20 10000 300 40
else
    bundles_gen "$tmp/in" 20 20000 500 40
fi
note "input: $BUNDLE_KIND, as-of $ASOF"

db=$tmp/run.db
outp=$tmp/o                 # DIR's parent: nothing else lives there
out=$outp/out
mkdir -p "$outp"

# killrun ARGS...: tally run under lib/killrun.py; prints its result lines
killrun() {
    "$PY" "$lib/killrun.py" --log "$tmp/stderr" "$@" -- \
        "$TALLY" --db "$db" run --rates "$RATES" --as-of "$ASOF" --out "$out" $BUNDLES
}

complete_run() {
    "$TALLY" --db "$db" run --rates "$RATES" --as-of "$ASOF" --out "$out" $BUNDLES \
        </dev/null >/dev/null 2>"$tmp/stderr"
}

# --- the reference -------------------------------------------------------
rm_db "$db"
killrun >"$tmp/trace" || fail "killrun.py failed"
set -- $(head -1 "$tmp/trace")
[ "$1" = exited ] || fail "reference run: $(cat "$tmp/trace")"
ref_rc=$2
duration=$3
[ "$ref_rc" = "$EXPECT_RC" ] || { cat "$tmp/stderr"; fail "reference run exited $ref_rc, expected $EXPECT_RC"; }
san_clean "$tmp/stderr" || fail "sanitizer report in the reference run"
mv "$out" "$tmp/ref"
only_entry "$outp" out || fail "temporary tree left by the reference run"
note "reference: exit $ref_rc in $3 s; $(grep '^stage' "$tmp/trace" | tr '\n' ' ')"

# --- the kill plan: one line per iteration ---------------------------------
#   delay D [D2]           kill D s after the start (then a second run at D2)
#   stage NAME PLUS [D2]   kill PLUS s after the progress line of stage NAME
#   rekill D               (DIR complete) kill a re-run D s after its start
cat >"$tmp/plan.py" <<'PLAN'
import sys
lines = open(sys.argv[1]).read().split("\n")
total = float(lines[0].split()[2])
n, rekills = int(sys.argv[2]), int(sys.argv[4])
fracs = [float(f) for f in sys.argv[3].split()]
stages = [(l.split()[1], float(l.split()[2])) for l in lines if l.startswith("stage ")]
plan = ["delay 0"]
plan += ["delay %.4f" % (total * (k + 0.5) / n) for k in range(n)]
for i, (name, off) in enumerate(stages):
    end = stages[i + 1][1] if i + 1 < len(stages) else total
    plan += ["stage %s %.4f" % (name, max(0.0, end - off) * f) for f in fracs]
for i in range(len(plan)):
    if i % 4 == 3:
        plan[i] += " %.4f" % (total * ((i * 7) % 10 + 0.5) / 10)
plan += ["rekill %.4f" % (total * (j + 0.5) / rekills) for j in range(rekills)]
print("\n".join(plan))
PLAN
"$PY" "$tmp/plan.py" "$tmp/trace" "$uniform" "$fracs" "$rekills" >"$tmp/plan" ||
    fail "cannot make the kill plan"

# after a kill DIR is absent (first run) or a complete, identical run
check_after_kill() {
    if [ -e "$out" ] && ! same_tree "$tmp/ref" "$out"; then
        fail "after $1, DIR holds something other than a complete run (above)"
    fi
}

kills=0; attempts=0; finished=0; seen=""
i=0
# iteration MODE A B C: one plan line (fresh ledger, kill(s), completing run)
iteration() {
    mode=$1 a=$2 b=${3:-} c=${4:-}
    i=$((i + 1))
    rm_db "$db"
    rm -rf "$out"
    if [ "$mode" = delay ]; then
        set -- --delay "$a"; what="kill at ${a}s"; again=$b
    else
        set -- --stage "$a" --plus "$b"; what="kill ${b}s into stage $a"; again=$c
    fi
    res=$(killrun "$@") || fail "killrun.py failed"
    set -- $(echo "$res" | head -1)
    attempts=$((attempts + 1))
    if [ "$1" = killed ]; then
        kills=$((kills + 1))
        case " $seen " in *" $3 "*) ;; *) seen="$seen $3" ;; esac
    else
        finished=$((finished + 1))
        [ "$2" = "$ref_rc" ] || { cat "$tmp/stderr"; fail "#$i ($what): run not killed but exited $2"; }
    fi
    what="$what: $(echo "$res" | head -1)"
    check_after_kill "#$i ($what)"
    if [ -n "$again" ]; then
        res2=$(killrun --delay "$again") || fail "killrun.py failed"
        what="$what, then at ${again}s: $(echo "$res2" | head -1)"
        check_after_kill "#$i ($what)"
    fi
    complete_run; rc=$?
    san_clean "$tmp/stderr" || fail "#$i ($what): sanitizer report in the completing run"
    [ "$rc" = "$ref_rc" ] || { cat "$tmp/stderr"; fail "#$i ($what): completing run exited $rc, reference $ref_rc"; }
    same_tree "$tmp/ref" "$out" || fail "#$i ($what): completing run's DIR differs from the reference (above)"
    only_entry "$outp" out || fail "#$i ($what): temporary tree left after the completing run"
    ledger_ok "$db" || fail "#$i ($what): ledger damaged"
}

grep -v '^rekill' "$tmp/plan" >"$tmp/kills"
while read -r mode a b c; do
    iteration "$mode" "$a" "$b" "$c"
done <"$tmp/kills"
# a loaded machine may finish some runs before their kill: top up to 20
# kills with delays spread over the first half of the run
extra=0
while [ "$kills" -lt 20 ] && [ "$extra" -lt 12 ]; do
    extra=$((extra + 1))
    iteration delay "$("$PY" -c "print('%.4f' % ($duration * ($extra - 0.5) / 24))")"
done

note "kills: $kills of $attempts attempts landed ($finished runs finished first); stages hit:$seen"
[ "$kills" -ge 20 ] || fail "only $kills kills landed (need 20): the run is too fast to kill reliably"
for s in ingest reconcile report notify; do
    case " $seen " in
    *" $s "*) ;;
    *) note "warning: no kill landed in stage $s" ;;
    esac
done

# --- DIR complete: killing a re-run at the same as-of never disturbs it --
grep '^rekill' "$tmp/plan" >"$tmp/rekills"
n=0
while read -r mode d; do
    res=$(killrun --delay "$d") || fail "killrun.py failed"
    res=$(echo "$res" | head -1)
    [ -d "$out" ] || fail "re-run killed at ${d}s ($res): DIR is gone"
    same_tree "$tmp/ref" "$out" || fail "re-run killed at ${d}s ($res): DIR changed (above)"
    n=$((n + 1))
done <"$tmp/rekills"
complete_run; rc=$?
[ "$rc" = "$ref_rc" ] || { cat "$tmp/stderr"; fail "final re-run exited $rc, reference $ref_rc"; }
same_tree "$tmp/ref" "$out" || fail "final re-run's DIR differs from the reference (above)"
only_entry "$outp" out || fail "temporary tree left after the final re-run"
ledger_ok "$db" || fail "ledger damaged after the final re-run"
echo "ok: $kills kills (+$n of a complete DIR), every completing run identical to the reference"
