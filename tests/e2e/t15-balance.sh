#!/bin/sh
# tally balance explains an account from the ledger the nightly run left,
# with the hand-computed figures of fixtures/README.md (ap-contoso: stopped
# for credits at 2026-10-08T02:10:08Z, 50.624111 left at the as-of), and
# changes nothing: not even at an as-of that would close a cycle (§8); an
# as-of inside a closed cycle is refused (64), not answered with the next
# cycle's figures; a debt row shows no instant; an account whose events are
# held for want of an accounts.csv row is explained as held (§10), an
# account the ledger has never seen is an error.
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
grep -q "^Settings: negative limit 0.000000, low threshold 20.000000$" "$tmp/bal.txt" || { echo "no settings line"; exit 1; }
grep -q "cm-co-0004  topup" "$tmp/bal.txt" || { echo "no grant line"; exit 1; }
tail -1 "$tmp/bal.err" | grep -q "1 account explained"
"$TALLY" --db "$tmp/t.db" balance ap-contoso --as-of 2027-03-01T00:00:00Z >/dev/null 2>&1
after=$(sqlite3 "$tmp/t.db" "SELECT COUNT(*), SUM(frozen) FROM statements; SELECT COUNT(*) FROM closes;")
[ "$before" = "$after" ] || { echo "balance changed the ledger: $before -> $after"; exit 1; }
if "$TALLY" --db "$tmp/t.db" balance nobody >/dev/null 2>&1; then echo "unknown account accepted"; exit 1; fi
# an as-of inside a closed cycle cannot be explained from its final figures: 64, said plainly
closed=$(sqlite3 "$tmp/t.db" "SELECT closed_end FROM closes WHERE account_id = 'ap-contoso'")
[ -n "$closed" ] || { echo "ap-contoso has no closed cycle"; exit 1; }
inside=$(date -u -d "@$((closed - 86400))" +%Y-%m-%dT%H:%M:%SZ)
rc=0
"$TALLY" --db "$tmp/t.db" balance ap-contoso --as-of "$inside" >"$tmp/in.txt" 2>"$tmp/in.err" || rc=$?
[ "$rc" = 64 ] || { echo "balance inside a closed cycle: exit $rc"; cat "$tmp/in.txt"; exit 1; }
grep -q "the as-of is inside a closed cycle" "$tmp/in.err" || { cat "$tmp/in.err"; exit 1; }
# ... which concerns that account alone: gale-tailspin's last close is earlier
[ "$(sqlite3 "$tmp/t.db" "SELECT closed_end < $closed - 86400 FROM closes WHERE account_id = 'gale-tailspin'")" = 1 ] ||
    { echo "the fixtures changed: gale-tailspin closes too late for this check"; exit 1; }
"$TALLY" --db "$tmp/t.db" balance gale-tailspin --as-of "$inside" >/dev/null 2>"$tmp/in.err" ||
    { echo "balance of another account refused for ap-contoso's close: $(cat "$tmp/in.err")"; exit 1; }
# a debt row (acct-debt owes 21 credits on Oct 10) has no grant instant: '-', not 1970-01-01
case=tests/e2e/cases/debt-chain-three-cycles
"$TALLY" --db "$tmp/d.db" run --rates $case/rates.csv --as-of 2026-10-10T00:00:00Z --out "$tmp/d" \
    $case/bundle-1 $case/bundle-2 2>/dev/null
"$TALLY" --db "$tmp/d.db" balance acct-debt --as-of 2026-10-10T00:00:00Z >"$tmp/debt.txt" 2>/dev/null
grep -q "^  credits  *debt  *-  *-  *-21.000000  *-$" "$tmp/debt.txt" ||
    { grep debt "$tmp/debt.txt"; echo "debt row: not '-' for its instant"; exit 1; }
# semantics §10: an account with events but no accounts.csv row yet is held, and balance says so
case=tests/e2e/cases/unknown-account-settings
"$TALLY" --db "$tmp/u.db" run --rates $case/rates.csv --as-of 2026-10-05T00:00:00Z --out "$tmp/u" \
    $case/bundle-1 2>/dev/null
"$TALLY" --db "$tmp/u.db" balance acct-unknown --as-of 2026-10-05T00:00:00Z > "$tmp/held.txt" 2>/dev/null ||
    { echo "balance of a held account failed"; exit 1; }
grep -q "^Account acct-unknown: no accounts.csv row yet" "$tmp/held.txt" || { cat "$tmp/held.txt"; exit 1; }
grep -q "^Held: 2 credits rows, 5 deployment events, 3 runs$" "$tmp/held.txt" || { cat "$tmp/held.txt"; exit 1; }
echo "balance ok"
