#!/bin/sh
# t35-migrate: a ledger written by an older Tally (schema 5, with a closed
# October and late runs still pending) is migrated on open, and the run
# that follows gives byte-identical reports to a ledger built from scratch
# by this version (migrations 6 and 7 move pending late runs to
# late_run_day and turn the runs mark into a bundle mark; 11 moves the
# id keys into run_ids; 16 drops their first home, runs.id_key).
set -eu
: "${TALLY:?}" "${root:?}"
here=$root/tests/e2e
case=$here/cases/late-data-closed-cycle
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

sqlite3 "$tmp/old.db" < "$here/data/ledger-v5.sql"
[ "$(sqlite3 "$tmp/old.db" 'PRAGMA user_version')" = 5 ] || { echo "fixture is not schema 5"; exit 1; }
"$TALLY" --db "$tmp/old.db" run --rates "$case/rates.csv" --as-of 2026-11-10T00:00:00Z \
    --out "$tmp/migrated" "$case/bundle-2" 2>"$tmp/err" || { cat "$tmp/err"; exit 1; }

"$TALLY" --db "$tmp/new.db" run --rates "$case/rates.csv" --as-of 2026-11-02T00:00:00Z --grace 24 \
    --out "$tmp/step1" "$case/bundle-1" 2>/dev/null
"$TALLY" --db "$tmp/new.db" run --rates "$case/rates.csv" --as-of 2026-11-10T00:00:00Z \
    --out "$tmp/fresh" "$case/bundle-2" 2>"$tmp/err" || { cat "$tmp/err"; exit 1; }

n=0
for f in $(cd "$tmp/fresh" && find . -name '*.csv' -o -name '*.xlsx' -o -name '*.eml' | sort); do
    cmp -s "$tmp/fresh/$f" "$tmp/migrated/$f" || { echo "migrated ledger differs: $f"; exit 1; }
    n=$((n + 1))
done
# migrations 11 and 16: every run is in run_ids or run_ids_new once, and
# under its own key: the same run sent again is a duplicate (found by its
# key), one sent again with other content a conflict
keys=$(sqlite3 "$tmp/old.db" "SELECT (SELECT count(*) FROM runs) - (SELECT count(*) FROM run_ids)
    - (SELECT count(*) FROM run_ids_new), (SELECT count(*) FROM runs r WHERE
    (SELECT count(*) FROM run_ids i WHERE i.run = r.rowid)
    + (SELECT count(*) FROM run_ids_new i WHERE i.run = r.rowid) != 1)")
[ "$keys" = "0|0" ] || { echo "run ids do not match runs: $keys"; exit 1; }
mkdir "$tmp/again"
sed -n '1,2p; 3s/,ok$/,failed/p' "$case/bundle-1/runs.csv" > "$tmp/again/runs.csv"
rc=0
"$TALLY" --db "$tmp/old.db" ingest "$tmp/again" 2>"$tmp/err" || rc=$?
[ "$rc" = 3 ] && grep -q ' 0 rows loaded, 1 duplicate, 1 quarantined' "$tmp/err" &&
    grep -q "line 3: conflict: l-r2 " "$tmp/err" || { echo "re-sent runs (exit $rc):"; cat "$tmp/err"; exit 1; }
late=$(sqlite3 "$tmp/old.db" "SELECT SUM(runs) FROM late_run_day")
[ "$late" = 4 ] || { echo "late_run_day holds $late runs, want the 4 pending"; exit 1; }
grep -q '^acct-late,runs,2026-11-01,.*,4\.000000,' "$tmp/migrated/statements.csv" ||
    { echo "November runs statement lacks late 4"; grep acct-late "$tmp/migrated/statements.csv"; exit 1; }
echo "schema 5 migrated: $n report files identical, 4 late runs posted"
