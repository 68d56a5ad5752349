#!/bin/sh
# t82-nightly: scripts/tally-nightly does what its header promises.
#   - accepted bundles go to done/ (rejected rows beside them), a bundle
#     rejected whole to rejected/ with its rejects file; .part uploads and
#     names holding a line break stay in the inbox; exit 3 for the rejects;
#   - a night with nothing new runs nothing and exits 0;
#   - a second tally-nightly while one runs exits 75 and moves nothing;
#   - filing away never overwrites (a bundle re-sent under a name already in
#     done/ gets a time prefix);
#   - a bundle replaced under its name during the night stays for the next.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/common.sh"
e2e_init t82
command -v flock >/dev/null || { echo "SKIP: no flock(1)"; exit 0; }

F=$root/fixtures
W=$root/scripts/tally-nightly
export TALLY TALLY_DB="$tmp/tally.db" TALLY_RATES="$F/rates.csv" TALLY_REPORTS="$tmp/reports" \
    TALLY_INBOX="$tmp/inbox" TALLY_RUN_ARGS="--as-of 2026-11-05T00:00:00Z"
mkdir -p "$TALLY_INBOX" "$TALLY_REPORTS"
nl='
'
nightly() {
    "$W" </dev/null >"$tmp/out" 2>"$tmp/log"
}
has() {
    [ -e "$TALLY_INBOX/$1" ] || fail "$2: no '$1' in the inbox: $(cd "$TALLY_INBOX" && find . | sort | tr '\n' ' ')"
}
hasnt() {
    [ ! -e "$TALLY_INBOX/$1" ] || fail "$2: '$1' is still there"
}

# night 1: two good bundles, one rejected whole, an upload in progress, a bad name
cp "$F/gale.tar.gz" "$F/process.zip" "$TALLY_INBOX/"
"$PY" - "$TALLY_INBOX/bad.tar" <<'EOF'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w") as t:
    data = b"account_id\n"
    info = tarfile.TarInfo("../accounts.csv")
    info.size = len(data)
    t.addfile(info, io.BytesIO(data))
EOF
cp "$F/gale.tar.gz" "$TALLY_INBOX/upload.tar.gz.part"
cp "$F/gale.tar.gz" "$TALLY_INBOX/line${nl}break.tar.gz"
nightly
rc=$?
[ "$rc" = 3 ] || { cat "$tmp/log"; fail "night 1: exit $rc (expected 3)"; }
for f in done/gale.tar.gz done/process.zip rejected/bad.tar rejected/bad.tar.rejects.csv \
         upload.tar.gz.part "line${nl}break.tar.gz"; do
    has "$f" "night 1"
done
hasnt gale.tar.gz "night 1"
grep -q 'unsafe_path' "$TALLY_INBOX/rejected/bad.tar.rejects.csv" || fail "night 1: rejects file of bad.tar"
grep -q 'skipping a name with a line break' "$tmp/log" || fail "night 1: the bad name is not logged"
[ -s "$TALLY_REPORTS/latest/summary.csv" ] || fail "night 1: no reports"

# night 2: nothing new
nightly
rc=$?
[ "$rc" = 0 ] || fail "night 2: exit $rc (expected 0)"
grep -q 'no new bundle' "$tmp/log" || fail "night 2: $(tail -n 1 "$tmp/log")"

# night 3: a second tally-nightly while one holds the night's lock
cp -r "$F/agent-platform" "$TALLY_INBOX/ap"
flock "$TALLY_DB.nightly.lock" sleep 3 &
holder=$!
sleep 1
nightly
rc=$?
wait "$holder"
[ "$rc" = 75 ] || fail "night 3 (locked): exit $rc (expected 75)"
has ap "night 3 (locked)"
nightly
rc=$?
[ "$rc" = 0 ] || [ "$rc" = 3 ] || { cat "$tmp/log"; fail "night 3: exit $rc"; }
has done/ap "night 3"
hasnt ap "night 3"

# night 4: gale.tar.gz re-sent under the same name: filed beside the first
cp "$F/process.zip" "$TALLY_INBOX/gale.tar.gz"
nightly
rc=$?
[ "$rc" = 0 ] || [ "$rc" = 3 ] || { cat "$tmp/log"; fail "night 4: exit $rc"; }
cmp -s "$TALLY_INBOX/done/gale.tar.gz" "$F/gale.tar.gz" || fail "night 4: done/gale.tar.gz overwritten"
n=$(find "$TALLY_INBOX/done" -name '*Z-gale.tar.gz' | wc -l)
[ "$n" = 1 ] || fail "night 4: $n time-prefixed copies in done/"

# night 5: the bundle is replaced under its name while the night runs
cat >"$tmp/replacing-tally" <<EOF
#!/bin/sh
for a; do
    [ "\$a" = run ] && cp "$F/gale.tar.gz" "$TALLY_INBOX/.new" && mv "$TALLY_INBOX/.new" "$TALLY_INBOX/export.zip"
done
exec "$TALLY" "\$@"
EOF
chmod +x "$tmp/replacing-tally"
cp "$F/process.zip" "$TALLY_INBOX/export.zip"
TALLY=$tmp/replacing-tally nightly
rc=$?
[ "$rc" = 0 ] || [ "$rc" = 3 ] || { cat "$tmp/log"; fail "night 5: exit $rc"; }
has export.zip "night 5"
hasnt done/export.zip "night 5"
cmp -s "$TALLY_INBOX/export.zip" "$F/gale.tar.gz" || fail "night 5: the new upload is not the one left"
grep -q 'changed since it was ingested' "$tmp/log" || fail "night 5: not logged"
echo "ok"
