#!/bin/sh
# Properties any correct run has (spec semantics.md §9), on generated data:
#   1. incremental = batch: four nightly runs over four slices of 40 days
#      give the same statements, summary, discrepancies, actions, rejects and
#      per-account CSVs as one run over the whole bundle;
#   2. every statement balances and its categories add up to "used";
#   3. every input row is loaded, a duplicate or a reject;
#   4. re-running with the same inputs and as-of changes nothing;
#   5. quiet days (simulate.c) change nothing: replaying every day run by
#      run gives byte-identical CSVs, workbooks and digests.
set -eu
: "${TALLY:?}" "${root:?}"
gen="$root/scripts/gen-bundle"
[ -x "$gen" ] || { echo "no $gen (make scripts/gen-bundle)"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
args="--accounts 6 --runs 6000 --deployments 300 --days 40 --seed 11 --start 2026-09-10"
"$gen" $args "$tmp/all" >/dev/null
rates="$tmp/all/rates.csv"
for k in 0 1 2 3; do
    "$gen" $args --from-day $((k * 10)) --to-day $((k * 10 + 9)) "$tmp/slice$k" >/dev/null
done
asof() { python3 -c "import datetime as d; print((d.date(2026,9,10)+d.timedelta(days=$1)).isoformat()+'T00:00:00Z')"; }

# batch: one run over everything at the final as-of
"$TALLY" --db "$tmp/batch.db" run --rates "$rates" --as-of "$(asof 40)" --out "$tmp/batch" "$tmp/all" \
    2>"$tmp/batch.err" || { cat "$tmp/batch.err"; exit 1; }
# incremental: one run a night over each slice
for k in 0 1 2 3; do
    "$TALLY" --db "$tmp/inc.db" run --rates "$rates" --as-of "$(asof $((k * 10 + 10)))" \
        --out "$tmp/inc" "$tmp/slice$k" 2>"$tmp/inc.err" || { cat "$tmp/inc.err"; exit 1; }
done

python3 - "$tmp" <<'PY'
import csv, glob, os, sys
tmp = sys.argv[1]
bad = []
def rel(d):
    out = set()
    for p in glob.glob(d + "/*.csv") + glob.glob(d + "/accounts/*/*.csv"):
        r = os.path.relpath(p, d)
        if r != "notifications.csv":
            out.add(r)
    return out
b, i = rel(tmp + "/batch"), rel(tmp + "/inc")
if b != i:
    bad.append(f"file sets differ: {sorted(b ^ i)[:5]}")
for r in sorted(b & i):
    x = open(f"{tmp}/batch/{r}", "rb").read()
    y = open(f"{tmp}/inc/{r}", "rb").read()
    if x != y:
        lx, ly = x.splitlines(), y.splitlines()
        n = next((k for k, (p, q) in enumerate(zip(lx, ly)) if p != q), min(len(lx), len(ly)))
        bad.append(f"incremental != batch: {r} line {n + 1}: {ly[n] if n < len(ly) else b'<end>'!r} vs {lx[n] if n < len(lx) else b'<end>'!r}")
micro = lambda s: int(round(float(s) * 1e6))
rows = list(csv.DictReader(open(f"{tmp}/batch/statements.csv")))
if not rows:
    bad.append("no statements")
cycles_closed = 0
for row in rows:
    o, g, u, a, e, l, c = (micro(row[k]) for k in ("opening", "granted", "used", "adjusted", "expired", "late", "closing"))
    if c != o + g - u - a - e - l:
        bad.append(f"statement does not balance: {row}")
    if micro(row["carried_to_next"]) != min(c, 0):
        bad.append(f"carried_to_next wrong: {row}")
    cats = sum(micro(row[k]) for k in ("used_models", "used_finetune", "used_guardrails", "used_scripts", "used_ocr", "used_browser", "used_runs"))
    if cats != u:
        bad.append(f"categories do not add up to used: {row}")
    cycles_closed += row["state"] == "closed"
# closing(N) = opening(N+1)
by = {}
for row in rows:
    by.setdefault((row["account_id"], row["pool"]), []).append(row)
for k, rs in by.items():
    rs.sort(key=lambda r: r["cycle_start"])
    for p, q in zip(rs, rs[1:]):
        if p["closing"] != q["opening"] or p["cycle_end"] != q["cycle_start"]:
            bad.append(f"cycle chain broken for {k}: {p['cycle_start']} closing {p['closing']} -> opening {q['opening']}")
if not cycles_closed:
    bad.append("no cycle closed: the test does not exercise closing")
for line in bad[:20]:
    print(line)
sys.exit(1 if bad else 0)
PY

# every input row is loaded, a duplicate or a reject
total=$(python3 -c "import csv,sys; print(sum(int(r['rows']) for r in csv.DictReader(open('$tmp/all/manifest.csv'))))")
summary=$(tail -1 "$tmp/batch.err")
loaded=$(echo "$summary" | sed -n 's/.* \([0-9]*\) rows\? loaded.*/\1/p')
dups=$(echo "$summary" | sed -n 's/.* \([0-9]*\) duplicates\?,.*/\1/p')
quar=$(echo "$summary" | sed -n 's/.* \([0-9]*\) quarantined.*/\1/p')
[ "$((loaded + dups + quar))" -eq "$total" ] || { echo "rows: $loaded + $dups + $quar != $total"; exit 1; }

# idempotent: the same bundle and as-of again changes nothing
"$TALLY" --db "$tmp/batch.db" run --rates "$rates" --as-of "$(asof 40)" --out "$tmp/again" "$tmp/all" 2>/dev/null
for f in $(cd "$tmp/batch" && find . -name '*.csv' -o -name '*.xlsx' -o -name '*.eml' | sort); do
    cmp -s "$tmp/batch/$f" "$tmp/again/$f" || { echo "re-run changed $f"; exit 1; }
done
# the quiet-day shortcut is taken, and replaying every run instead changes nothing
quiet() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['counts']['quiet_days'])" "$1"; }
[ "$(quiet "$tmp/batch/run.json")" -gt 0 ] || { echo "no quiet day: the shortcut is not exercised"; exit 1; }
TALLY_REPLAY_EVERY_RUN=1 "$TALLY" --db "$tmp/replay.db" run --rates "$rates" --as-of "$(asof 40)" \
    --out "$tmp/replay" "$tmp/all" 2>"$tmp/replay.err" || { cat "$tmp/replay.err"; exit 1; }
[ "$(quiet "$tmp/replay/run.json")" -eq 0 ] || { echo "TALLY_REPLAY_EVERY_RUN still took quiet days"; exit 1; }
for f in $(cd "$tmp/batch" && find . -name '*.csv' -o -name '*.xlsx' -o -name '*.eml' | sort); do
    cmp -s "$tmp/batch/$f" "$tmp/replay/$f" || { echo "quiet days changed $f"; exit 1; }
done
echo "properties hold: incremental = batch, statements balance, rows conserved, idempotent, quiet days exact"
