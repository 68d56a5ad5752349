#!/bin/sh
# tally balance explains an account from the ledger the nightly run left,
# with the hand-computed figures of fixtures/README.md (ap-contoso: stopped
# for credits at 2026-10-08T02:10:08Z, 50.624111 left at the as-of), and
# changes nothing: not even at an as-of that would close a cycle (§8); an
# account whose events are held for want of an accounts.csv row is
# explained as held (§10), an account the ledger has never seen is an error.
set -eu
: "${TALLY:?}" "${root:?}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$root"
"$TALLY" --db "$tmp/t.db" run --rates fixtures/rates.csv --as-of 2026-11-05T00:00:00Z \
    --out "$tmp/out" fixtures/gale.tar.gz fixtures/agent-platform fixtures/process.zip 2>/dev/null || [ $? -eq 3 ]
before=$(sqlite3 "$tmp/t.db" "SELECT COUNT(*), SUM(frozen) FROM statements; SELECT COUNT(*) FROM closes;")
"$TALLY" --db "$tmp/t.db" balance ap-contoso > "$tmp/bal.txt" 2>"$tmp/bal.err"
grep -q "balance 50.624111 (84.37%), widget green" "$tmp/bal.txt" || { cat "$tmp/bal.txt"; exit 1; }
grep -q "2026-10-08T02:10:08Z  guardrail" "$tmp/bal.txt" || { echo "no stop line"; exit 1; }
grep -q "cm-co-0004  topup" "$tmp/bal.txt" || { echo "no grant line"; exit 1; }
tail -1 "$tmp/bal.err" | grep -q "1 account explained"
"$TALLY" --db "$tmp/t.db" balance ap-contoso --as-of 2027-03-01T00:00:00Z >/dev/null 2>&1
after=$(sqlite3 "$tmp/t.db" "SELECT COUNT(*), SUM(frozen) FROM statements; SELECT COUNT(*) FROM closes;")
[ "$before" = "$after" ] || { echo "balance changed the ledger: $before -> $after"; exit 1; }
if "$TALLY" --db "$tmp/t.db" balance nobody >/dev/null 2>&1; then echo "unknown account accepted"; exit 1; fi
# semantics §10: an account with events but no accounts.csv row yet is held, and balance says so
case=tests/e2e/cases/unknown-account-settings
"$TALLY" --db "$tmp/u.db" run --rates $case/rates.csv --as-of 2026-10-05T00:00:00Z --out "$tmp/u" \
    $case/bundle-1 2>/dev/null
"$TALLY" --db "$tmp/u.db" balance acct-unknown --as-of 2026-10-05T00:00:00Z > "$tmp/held.txt" 2>/dev/null ||
    { echo "balance of a held account failed"; exit 1; }
grep -q "^Account acct-unknown: no accounts.csv row yet" "$tmp/held.txt" || { cat "$tmp/held.txt"; exit 1; }
grep -q "^Held: 2 credits rows, 5 deployment events, 3 runs$" "$tmp/held.txt" || { cat "$tmp/held.txt"; exit 1; }
echo "balance ok"
