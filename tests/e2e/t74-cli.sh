#!/bin/sh
# t74-cli: the command-line contract (spec outputs.md "Command line").
#
#   - `tally --help` and every `tally CMD --help`: exit 0, usage on stdout,
#     nothing on stderr, no ledger created;
#   - an unknown option (global or per command): exit 64, usage on stderr,
#     nothing on stdout; `tally` alone and an unknown command: exit 64;
#   - run without --rates or --out, --as-of garbage, a bad window, no
#     --as-of with no manifest period_end in the ledger: exit 64 (65 when
#     every bundle given was rejected, the reason none is known), and
#     nothing committed (no rates or bundles rows) and no DIR; so does a
#     bad notify.sender setting (64), and a missing template (74);
#   - a refused rate card (two rows of one hardware overlapping): `run`
#     exits 65 with nothing committed and no DIR; `rates` exits 65 and the
#     card in force stays;
#   - every command's stderr ends with a non-empty line (the one-line
#     summary, a "tally: " line, when the command succeeds);
#   - a skipped file is named on stderr and in run.json's skipped_files;
#   - a header naming a column twice warns "repeated column", and the first counts;
#   - a rate card's unknown column warns, as a bundle file's does;
#   - --out naming the ledger's directory, a file, a link, or a directory
#     holding the run's rate card, a bundle or a link to the ledger exits 73
#     and destroys nothing; a read-only DIR (0555) is replaced and keeps its
#     mode (as nobody: root ignores modes);
#   - notify computes at its own as-of, and a run there shows its digest again;
#   - run --sendmail: a failed hand-off exits 73 with the summary last, and
#     the next run hands each digest off exactly once; a command that hangs
#     is killed at notify.sendmail_timeout and the rest wait for the next
#     run; a digest made by a run without --sendmail is never handed off;
#   - started with descriptors 0, 1 and 2 closed, a run writes the same reports.
# shellcheck disable=SC2046,SC2086  # $BUNDLES and result lines split on purpose
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/common.sh"
e2e_init t74
command -v sqlite3 >/dev/null 2>&1 || fail "sqlite3 is needed"

problems=0
problem() {
    problems=$((problems + 1))
    echo "FAIL: $*"
}

# t WANT_RC LABEL ARGS...: run tally, stdout in $tmp/out, stderr in $tmp/err
t() {
    want=$1 label=$2
    shift 2
    "$TALLY" "$@" </dev/null >"$tmp/out" 2>"$tmp/err"
    got=$?
    san_clean "$tmp/err" >/dev/null || problem "$label: sanitizer report"
    if [ "$got" != "$want" ]; then
        problem "$label: exit $got (expected $want): $(head -2 "$tmp/err")"
        return 1
    fi
    if [ ! -s "$tmp/err" ] || [ -z "$(tail -n 1 "$tmp/err")" ]; then
        [ "$want" = 0 ] && [ "$label" != "${label#help}" ] ||
            problem "$label: stderr does not end with a non-empty line"
    fi
    return 0
}

# committed DB: "rates N bundles M" rows
committed() {
    [ -e "$1" ] || { echo "rates 0 bundles 0"; return; }
    echo "rates $(sqlite3 "$1" 'select count(*) from rates' 2>&1) bundles $(sqlite3 "$1" 'select count(*) from bundles' 2>&1)"
}

F=$root/fixtures
db=$tmp/t.db
commands="balance config ingest notify rates report run"

# --- help --------------------------------------------------------------
t 0 "help: tally --help" --db "$tmp/help.db" --help &&
    { head -1 "$tmp/out" | grep -q '^usage: tally' || problem "tally --help: no usage on stdout"; }
for c in $commands; do
    if t 0 "help: tally $c --help" --db "$tmp/help.db" "$c" --help; then
        grep -q "^usage: .*tally.* $c" "$tmp/out" || problem "tally $c --help: no usage line naming '$c' on stdout: $(head -1 "$tmp/out")"
        [ -s "$tmp/err" ] && problem "tally $c --help: wrote to stderr: $(head -1 "$tmp/err")"
    fi
done
[ -e "$tmp/help.db" ] && problem "--help created the ledger"

# --- bad usage -----------------------------------------------------------
t 64 "tally (no arguments)" && { grep -q '^usage: ' "$tmp/err" || problem "tally alone: no usage on stderr"; }
[ -s "$tmp/out" ] && problem "tally alone: wrote to stdout"
t 64 "tally --bogus" --bogus && { grep -q '^usage: ' "$tmp/err" || problem "tally --bogus: no usage on stderr"; }
t 64 "tally nosuch" --db "$db" nosuch && { grep -q "nosuch" "$tmp/err" || problem "tally nosuch: no message naming it"; }
for c in $commands; do
    if t 64 "tally $c --bogus" --db "$db" "$c" --bogus; then
        grep -q '^usage: ' "$tmp/err" || problem "tally $c --bogus: no usage on stderr"
        grep -q "^tally: .*--bogus" "$tmp/err" || problem "tally $c --bogus: no message naming the option"
        [ -s "$tmp/out" ] && problem "tally $c --bogus: wrote to stdout"
        # outputs.md: every command ends with a one-line summary, a refused one too
        tail -n 1 "$tmp/err" | grep -q "^tally: $c: nothing done (bad usage), [0-9.]* s$" ||
            problem "tally $c --bogus: no summary line: $(tail -n 1 "$tmp/err")"
    fi
done

# run's usage errors commit nothing and write no DIR
usage_run() {
    # usage_run LABEL ARGS...: expects 64 on a fresh ledger
    label=$1
    shift
    rm_db "$db"
    rm -rf "$tmp/dir"
    t 64 "$label" --db "$db" run "$@" || return
    grep -q '^tally: ' "$tmp/err" || problem "$label: no 'tally: ' message"
    c=$(committed "$db")
    [ "$c" = "rates 0 bundles 0" ] ||
        problem "$label: exit 64, but only after committing rates and ingest to the ledger ($c)"
    [ -e "$tmp/dir" ] && problem "$label: exit 64 but created DIR"
}
usage_run "run without --rates" --out "$tmp/dir" --as-of 2026-11-05T00:00:00Z "$F/gale.tar.gz"
usage_run "run without --out" --rates "$F/rates.csv" --as-of 2026-11-05T00:00:00Z "$F/gale.tar.gz"
usage_run "run without a BUNDLE" --rates "$F/rates.csv" --out "$tmp/dir" --as-of 2026-11-05T00:00:00Z
usage_run "run --as-of garbage" --rates "$F/rates.csv" --out "$tmp/dir" --as-of garbage "$F/gale.tar.gz"
# an as-of whose cycle would start or end outside years 0001-9999
for a in 9999-12-01T00:00:01Z 0000-12-31T23:59:59Z 0001-01-01T00:00:00+00:01; do
    usage_run "run --as-of $a" --rates "$F/rates.csv" --out "$tmp/dir" --as-of $a "$F/gale.tar.gz"
done
usage_run "run --as-of 2026-13-01" --rates "$F/rates.csv" --out "$tmp/dir" --as-of 2026-13-01T00:00:00Z "$F/gale.tar.gz"
usage_run "run --grace abc" --rates "$F/rates.csv" --out "$tmp/dir" --as-of 2026-11-05T00:00:00Z --grace abc "$F/gale.tar.gz"
# end + grace in seconds must not wrap: past ten years is refused
for g in 87601 2562047787514144; do
    usage_run "run --grace $g" --rates "$F/rates.csv" --out "$tmp/dir" --as-of 2026-11-05T00:00:00Z --grace $g "$F/gale.tar.gz"
done
usage_run "run --window 5d" --rates "$F/rates.csv" --out "$tmp/dir" --as-of 2026-11-05T00:00:00Z --window 5d "$F/gale.tar.gz"
usage_run "run --from without --to" --rates "$F/rates.csv" --out "$tmp/dir" --as-of 2026-11-05T00:00:00Z --from 2026-10-01 "$F/gale.tar.gz"
usage_run "run --from after --to" --rates "$F/rates.csv" --out "$tmp/dir" --as-of 2026-11-05T00:00:00Z --from 2026-10-05 --to 2026-10-01 "$F/gale.tar.gz"
# a bad setting is found before anything is committed, the sender (checked
# by the notify stage) and templates that do not load as well as the rest
printf '[notify]\nsender = not an address\n' >"$tmp/badsender.conf"
printf '[notify]\ntemplates = %s/no-templates\n' "$tmp" >"$tmp/notemplates.conf"
# a name no digest has is found by rendering samples, not only on the night one is due
cp -R "$root/templates" "$tmp/misspelt"
sed -i 's/{{p}}/{{pp}}/' "$tmp/misspelt/item-threshold.html"
printf '[notify]\ntemplates = %s/misspelt\n' "$tmp" >"$tmp/misspelt.conf"
for conf in "64 badsender" "74 notemplates" "65 misspelt" "64 badsender notify" \
            "74 notemplates notify" "65 misspelt notify"; do
    set -- $conf
    rm_db "$db"; rm -rf "$tmp/dir"
    if [ "${3:-run}" = run ]; then
        t "$1" "run with $2.conf" --config "$tmp/$2.conf" --db "$db" run --rates "$F/rates.csv" \
            --out "$tmp/dir" --as-of 2026-11-05T00:00:00Z "$F/gale.tar.gz"
        c=$(committed "$db")
        [ "$c" = "rates 0 bundles 0" ] || problem "run with $2.conf: exit $1 after committing ($c)"
    else
        t "$1" "notify with $2.conf" --config "$tmp/$2.conf" --db "$db" notify \
            --outbox "$tmp/dir" --as-of 2026-11-05T00:00:00Z
    fi
    [ -e "$tmp/dir" ] && problem "${3:-run} with $2.conf: created DIR"
done
# tally config checks what it prints, as run would
t 64 "config with badsender.conf" --config "$tmp/badsender.conf" config
grep -q "sender" "$tmp/err" || problem "config with badsender.conf: the sender is not named"
for c in report notify balance; do
    case $c in
    report) extra="--out $tmp/dir" ;;
    notify) extra="--outbox $tmp/dir" ;;
    balance) extra="gale-northwind" ;;
    esac
    t 64 "tally $c --as-of garbage" --db "$db" $c --as-of garbage $extra
done
# balance only reads: a --db that names nothing is a usage error, and no
# stray ledger is left where support typed the command
t 64 "balance without a ledger" --db "$tmp/none.db" balance gale-northwind
ls "$tmp/none.db"* >/dev/null 2>&1 && problem "balance without a ledger: created $(ls "$tmp/none.db"*)"

# no --as-of and no manifest period_end in the ledger: 64
rm_db "$db"; rm -rf "$tmp/dir"
# fixtures/agent-platform has no manifest.csv
t 64 "run with no --as-of and a bundle without manifest" --db "$db" run --rates "$F/rates.csv" \
    --out "$tmp/dir" "$F/agent-platform" &&
    { grep -q '^tally: .*as-of' "$tmp/err" || problem "run with no --as-of: no message about the as-of"; }
[ -e "$tmp/dir" ] && problem "run with no --as-of (no manifest): created DIR"
grep -q "as-of not known," "$tmp/err" || problem "run with no --as-of (no manifest): summary: $(tail -n 1 "$tmp/err")"
# every bundle rejected is why no period_end is known: 65 outranks 64
rm_db "$db"; printf 'not an archive' >"$tmp/junk0.zip"
t 65 "run with no --as-of and every bundle rejected" --db "$db" run --rates "$F/rates.csv" \
    --out "$tmp/dir" "$tmp/junk0.zip"
rm_db "$db"; rm -rf "$tmp/dir"
t 64 "report with no --as-of on an empty ledger" --db "$db" report --out "$tmp/dir"
[ -e "$tmp/dir" ] && problem "report with no --as-of: created DIR"

# --- a refused rate card: 65, nothing committed ---------------------------
cp "$F/rates.csv" "$tmp/overlap.csv"
echo "gpu.a100-80g,model,NVIDIA A100 80GB,,,5.000000,2026-06-01T00:00:00Z," >>"$tmp/overlap.csv"
rm_db "$db"; rm -rf "$tmp/dir"
if t 65 "run with an overlapping rate card" --db "$db" run --rates "$tmp/overlap.csv" --out "$tmp/dir" \
    --as-of 2026-11-05T00:00:00Z "$F/gale.tar.gz" "$F/agent-platform" "$F/process.zip"; then
    grep -q "^tally: .*overlap.csv" "$tmp/err" || problem "refused card: no message naming the card: $(head -1 "$tmp/err")"
fi
c=$(committed "$db")
[ "$c" = "rates 0 bundles 0" ] || problem "refused card: run committed to the ledger ($c)"
[ -e "$tmp/dir" ] && problem "refused card: run created DIR"
# `rates` keeps the card in force
rm_db "$db"
t 0 "rates with the fixtures' card" --db "$db" rates "$F/rates.csv"
before=$(sqlite3 "$db" 'select * from rates order by 1, 7')
t 65 "rates with an overlapping card" --db "$db" rates "$tmp/overlap.csv"
[ "$(sqlite3 "$db" 'select * from rates order by 1, 7')" = "$before" ] ||
    problem "refused card: 'rates' changed the card in force"
# a refused card with a good ledger: a later run still has the old card
rm -rf "$tmp/dir"
t 65 "run with an overlapping card on a loaded ledger" --db "$db" run --rates "$tmp/overlap.csv" \
    --out "$tmp/dir" --as-of 2026-11-05T00:00:00Z "$F/gale.tar.gz"
[ "$(sqlite3 "$db" 'select count(*) from bundles')" = 0 ] || problem "refused card on a loaded ledger: bundles committed"
[ "$(sqlite3 "$db" 'select * from rates order by 1, 7')" = "$before" ] || problem "refused card: run changed the card in force"

# --- every command ends with a one-line summary ---------------------------
rm_db "$db"; rm -rf "$tmp/dir" "$tmp/box"
summary() {
    # summary WANT LABEL ARGS...
    t "$@" || return
    shift 2
    last=$(tail -n 1 "$tmp/err")
    case $last in
    "tally: "*[0-9]" s") ;;     # every summary ends with the seconds it took
    *) problem "'tally $*': the last stderr line is not a one-line summary: '$last'" ;;
    esac
}
summary 0 "rates" --db "$db" rates "$F/rates.csv"
summary 3 "ingest" --db "$db" ingest "$F/gale.tar.gz" "$F/agent-platform" "$F/process.zip"
summary 0 "report" --db "$db" report --out "$tmp/dir"
summary 0 "notify" --db "$db" notify --outbox "$tmp/box"
summary 0 "balance" --db "$db" balance gale-northwind
[ -s "$tmp/out" ] || problem "balance wrote nothing to stdout"
# failures end with the summary too (outputs.md "every command ends with a
# one-line summary")
: >"$tmp/plainfile"
summary 73 "run into a DIR that is a file" --db "$db" run --rates "$F/rates.csv" --out "$tmp/plainfile" \
    "$F/gale.tar.gz"
summary 73 "notify into an outbox that is a file" --db "$db" notify --outbox "$tmp/plainfile"
summary 64 "balance of an unknown account" --db "$db" balance no-such-account
summary 64 "report with a bad window" --db "$db" report --window 8d --out "$tmp/dir"
summary 74 "run on a ledger that cannot be opened" --db "$tmp/no/such/dir.db" run --rates "$F/rates.csv" \
    --out "$tmp/dir" "$F/gale.tar.gz"
summary 3 "run" --db "$db" run --rates "$F/rates.csv" --out "$tmp/dir" "$F/gale.tar.gz" "$F/agent-platform" "$F/process.zip"
# --sendmail (outputs.md): a failed hand-off exits 73 and ends with the
# summary; the next run hands every digest off once, and a third sends none
printf '#!/bin/sh\ncat >/dev/null\nexit 1\n' >"$tmp/failmail"
printf '#!/bin/sh\ncat >"%s/sent/$$.eml"\n' "$tmp" >"$tmp/okmail"
chmod +x "$tmp/failmail" "$tmp/okmail"
mkdir -p "$tmp/sent"
rm_db "$tmp/mail.db"
summary 73 "run --sendmail failing" --db "$tmp/mail.db" run --rates "$F/rates.csv" \
    --as-of 2026-11-05T00:00:00Z --sendmail "$tmp/failmail" --out "$tmp/mail" \
    "$F/gale.tar.gz" "$F/agent-platform"
grep -q "digests could not be handed off; the next run retries them" "$tmp/err" ||
    problem "run --sendmail failing: no line saying the hand-off is retried"
created=$(ls "$tmp/mail/outbox" | grep -c '\.eml$')
[ "$created" -gt 0 ] || problem "run --sendmail failing: no digest created to hand off"
for i in 1 2; do
    t 3 "run --sendmail working ($i)" --db "$tmp/mail.db" run --rates "$F/rates.csv" \
        --as-of 2026-11-05T00:00:00Z --sendmail "$tmp/okmail" --out "$tmp/mail" \
        "$F/gale.tar.gz" "$F/agent-platform"
    sent=$(ls "$tmp/sent" | wc -l)
    [ "$sent" = "$created" ] || problem "run --sendmail working ($i): $sent handed off, $created digests"
done
rm_db "$tmp/mail.db"; rm -rf "$tmp/mail" "$tmp/sent"
# a command that hangs is killed at notify.sendmail_timeout (process group
# and all), the run hands off nothing more and exits 73, and every digest
# waits for the next run, which hands each off once
printf '#!/bin/sh\ncat >/dev/null\nsleep 60 &\necho $$ $! >>"%s/hang.pids"\nwait\n' "$tmp" >"$tmp/hangmail"
chmod +x "$tmp/hangmail"
printf '[notify]\nsendmail_timeout = 1\n' >"$tmp/hang.conf"
mkdir -p "$tmp/sent"
started=$(date +%s)
summary 73 "run --sendmail hanging" --config "$tmp/hang.conf" --db "$tmp/mail.db" run \
    --rates "$F/rates.csv" --as-of 2026-11-05T00:00:00Z --sendmail "$tmp/hangmail" --out "$tmp/mail" \
    "$F/gale.tar.gz" "$F/agent-platform"
[ $(($(date +%s) - started)) -lt 20 ] || problem "run --sendmail hanging: not stopped at the timeout"
grep -q "no answer within 1 s (notify.sendmail_timeout): killed" "$tmp/err" ||
    problem "run --sendmail hanging: no line saying the command was killed"
created=$(ls "$tmp/mail/outbox" | grep -c '\.eml$')
grep -q "$((created - 1)) more digests are not handed off after it" "$tmp/err" ||
    problem "run --sendmail hanging: the digests after the first were not set aside"
for pid in $(cat "$tmp/hang.pids"); do     # killed: gone, or a zombie its new parent has yet to reap
    state=$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null)
    [ -z "$state" ] || [ "$state" = Z ] || problem "run --sendmail hanging: process $pid of the command still runs"
done
t 3 "run --sendmail after a hang" --db "$tmp/mail.db" run --rates "$F/rates.csv" \
    --as-of 2026-11-05T00:00:00Z --sendmail "$tmp/okmail" --out "$tmp/mail" \
    "$F/gale.tar.gz" "$F/agent-platform"
sent=$(ls "$tmp/sent" | wc -l)
[ "$sent" = "$created" ] || problem "run --sendmail after a hang: $sent handed off, $created digests"
rm_db "$tmp/mail.db"; rm -rf "$tmp/mail" "$tmp/sent"
# --sendmail "hands each new digest": one a run without it made went to
# the outbox only, and is not mailed when --sendmail is turned on later
mkdir -p "$tmp/sent"
N=$here/data/notify-asof
t 0 "run without --sendmail (the 50% digest)" --db "$tmp/mail.db" run --rates "$N/rates.csv" \
    --as-of 2026-10-02T11:00:00Z --out "$tmp/mail" "$N/bundle"
t 0 "run with --sendmail turned on (the 70% digest)" --db "$tmp/mail.db" run --rates "$N/rates.csv" \
    --as-of 2026-10-03T00:00:00Z --sendmail "$tmp/okmail" --out "$tmp/mail" "$N/bundle"
sent=$(cat "$tmp/sent"/*.eml 2>/dev/null | grep -ci '^Message-Id:')
[ "$sent" = 1 ] && grep -q "70%" "$tmp/sent"/*.eml ||
    problem "run with --sendmail turned on: $sent digests handed off (expected the new one only)"
rm_db "$tmp/mail.db"; rm -rf "$tmp/mail" "$tmp/sent"
# failures end with the summary too: every bundle rejected, a refused card
printf 'not an archive' >"$tmp/junk.zip"
summary 65 "ingest of a rejected bundle" --db "$db" ingest "$tmp/junk.zip"
summary 65 "rates with an overlapping card" --db "$db" rates "$tmp/overlap.csv"
# started with descriptors 0, 1 and 2 closed (a careless cron or daemon):
# the same reports, none of them receiving what was meant for stderr
"$TALLY" --db "$tmp/closed.db" run --rates "$F/rates.csv" --out "$tmp/closed" \
    "$F/gale.tar.gz" "$F/agent-platform" "$F/process.zip" <&- >&- 2>&-
rc=$?
[ "$rc" = 3 ] || problem "run with 0, 1 and 2 closed: exit $rc (expected 3)"
diff -r -x run.json "$tmp/dir" "$tmp/closed" >/dev/null ||
    problem "run with 0, 1 and 2 closed: reports differ from the run above"
ck=$(sqlite3 "$tmp/closed.db" "PRAGMA integrity_check" 2>&1)
[ "$ck" = ok ] || problem "run with 0, 1 and 2 closed: ledger integrity: $ck"
! grep -l "tally: " "$tmp/closed.db"* "$tmp/closed"/*.csv >/dev/null 2>&1 ||
    problem "run with 0, 1 and 2 closed: a message landed in a file"
rm_db "$tmp/closed.db"; rm -rf "$tmp/closed"
# inputs.md: skipped files are "listed in the command's summary and in run.json"
rm_db "$db"; rm -rf "$tmp/dir" "$tmp/skip"
cp -r "$F/agent-platform" "$tmp/skip"
echo "not data" >"$tmp/skip/README.txt"
echo "not data" >"$tmp/skip/$(printf 'caf\351').txt"    # a Latin-1 name: listed escaped, not dropped
t 3 "run with a skipped file (agent-platform quarantines rows)" --db "$db" run --rates "$F/rates.csv" --out "$tmp/dir" \
    --as-of 2026-11-05T00:00:00Z "$tmp/skip"
grep -q "^tally: .*'skip': skipped 'README.txt'" "$tmp/err" || problem "skipped file: not named on stderr"
listed=$("$PY" -c 'import json, sys; j = json.load(open(sys.argv[1]))
print(j["counts"]["files_skipped"], json.dumps(sorted(j["skipped_files"])))' "$tmp/dir/run.json" 2>&1)
[ "$listed" = '2 ["skip: README.txt", "skip: caf\\xE9.txt"]' ] || problem "skipped file: run.json lists '$listed'"

# a column named twice: the first counts, the second is ignored with a warning saying so
rm_db "$db"; mkdir -p "$tmp/twice"
printf 'event_id,account_id,ts,kind,resource_id,resource_name,owner,outcome,kind\n%s\n' \
    'r1,a1,2026-10-01T00:00:00Z,agent,ag-1,,,ok,robot' >"$tmp/twice/runs.csv"
t 0 "ingest with a column named twice" --db "$db" ingest "$tmp/twice"
grep -q "^tally: .*'runs.csv': repeated column 'kind' ignored" "$tmp/err" ||
    problem "column named twice: no 'repeated column' warning: $(head -1 "$tmp/err")"
[ "$(sqlite3 "$db" 'select kind from runs')" = agent ] || problem "column named twice: the first did not count"

# inputs.md "CSV rules (all files)": the rate card's unknown columns warn too
rm_db "$db"
sed '1s/$/,extra/; 2,$s/$/,x/' "$F/rates.csv" >"$tmp/extra.csv"
t 0 "rates with an unknown column" --db "$db" rates "$tmp/extra.csv"
grep -q "^tally: rates: warning: .*unknown column 'extra' ignored" "$tmp/err" ||
    problem "rate card with an unknown column: no warning: $(head -1 "$tmp/err")"

# DIR is replaced whole, so a DIR that holds the ledger or is a file is refused (73), untouched
mkdir -p "$tmp/nightly"
t 73 "run --out the ledger's directory" --db "$tmp/nightly/t.db" run --rates "$F/rates.csv" \
    --as-of 2026-11-05T00:00:00Z --out "$tmp/nightly" "$F/gale.tar.gz"
[ -e "$tmp/nightly/t.db" ] || problem "run --out the ledger's directory: the ledger is gone"
grep -q "holds the ledger" "$tmp/err" || problem "run --out the ledger's directory: $(tail -n 1 "$tmp/err")"
# ... and so does a DIR holding this run's own rate card or bundle, or a link
mkdir -p "$tmp/export"
cp "$F/rates.csv" "$F/gale.tar.gz" "$tmp/export/"
t 73 "run --out the directory of its rate card" --db "$tmp/nightly/t.db" run --rates "$tmp/export/rates.csv" \
    --as-of 2026-11-05T00:00:00Z --out "$tmp/export" "$F/gale.tar.gz"
grep -q "holds the rate card" "$tmp/err" || problem "run --out its rate card's directory: $(head -1 "$tmp/err")"
t 73 "run --out the directory of its bundle" --db "$tmp/nightly/t.db" run --rates "$F/rates.csv" \
    --as-of 2026-11-05T00:00:00Z --out "$tmp/export" "$tmp/export/gale.tar.gz"
cp -r "$F/agent-platform" "$tmp/dirbundle"
t 73 "run --out its directory bundle" --db "$tmp/nightly/t.db" run --rates "$F/rates.csv" \
    --as-of 2026-11-05T00:00:00Z --out "$tmp/dirbundle/" "$tmp/dirbundle"
diff -r "$F/agent-platform" "$tmp/dirbundle" >/dev/null || problem "run --out its directory bundle: bundle changed"
[ "$(ls "$tmp/export")" = "gale.tar.gz
rates.csv" ] || problem "run --out its inputs' directory: left $(ls "$tmp/export")"
ln -s "$tmp/export" "$tmp/linked"
t 73 "run --out a symbolic link" --db "$tmp/nightly/t.db" run --rates "$F/rates.csv" \
    --as-of 2026-11-05T00:00:00Z --out "$tmp/linked" "$F/gale.tar.gz"
grep -q "symbolic link" "$tmp/err" || problem "run --out a symbolic link: $(head -1 "$tmp/err")"
t 73 "run --out a symbolic link/" --db "$tmp/nightly/t.db" run --rates "$F/rates.csv" \
    --as-of 2026-11-05T00:00:00Z --out "$tmp/linked/" "$F/gale.tar.gz"
[ "$(sqlite3 "$tmp/nightly/t.db" 'select count(*) from bundles')" = 0 ] ||
    problem "run --out a symbolic link/: a bundle was committed before the refusal"
# a link inside DIR to a ledger elsewhere: the swap would delete the name
mkdir -p "$tmp/withlink"
ln -s "$tmp/nightly/t.db" "$tmp/withlink/t.db"
t 73 "run --out a DIR holding a link to the ledger" --db "$tmp/withlink/t.db" run --rates "$F/rates.csv" \
    --as-of 2026-11-05T00:00:00Z --out "$tmp/withlink" "$F/gale.tar.gz"
[ -L "$tmp/withlink/t.db" ] || problem "run --out a DIR holding a link to the ledger: the link is gone"
echo keep >"$tmp/afile"
t 73 "report --out a file" --db "$tmp/nightly/t.db" report --as-of 2026-11-05T00:00:00Z --out "$tmp/afile"
[ "$(cat "$tmp/afile")" = keep ] || problem "report --out a file: the file was replaced"
# the templates found beside the binary (no templates setting) are kept too
mkdir -p "$tmp/inst"
cp "$TALLY" "$tmp/inst/tally" && cp -R "$root/templates" "$tmp/inst/"
tally_built=$TALLY TALLY=$tmp/inst/tally
t 73 "report --out the templates beside the binary" --db "$tmp/nightly/t.db" \
    report --as-of 2026-11-05T00:00:00Z --out "$tmp/inst/templates"
TALLY=$tally_built
diff -r "$root/templates" "$tmp/inst/templates" >/dev/null ||
    problem "report --out the templates beside the binary: the templates changed"
case $(tail -n 1 "$tmp/err") in
*"accounts reported"*) ;;
*) problem "a failed report does not end with its summary line: $(tail -n 1 "$tmp/err")" ;;
esac

# notify computes at its as-of (spec README: a run of the pipeline "computes at an
# as-of"): after a run at Oct 2, notify at Oct 3 delivers the runs crossings of
# Oct 2, and a run at Oct 3 shows that digest again and creates none
rm_db "$db"; rm -rf "$tmp/dir" "$tmp/box"
N=$here/data/notify-asof
t 0 "run before a notify" --db "$db" run --rates "$N/rates.csv" --as-of 2026-10-02T00:00:00Z \
    --out "$tmp/dir" "$N/bundle"
t 0 "notify at a later as-of" --db "$db" notify --as-of 2026-10-03T00:00:00Z --outbox "$tmp/box"
items=$(tail -n +2 "$tmp/box/notifications.csv" | cut -d, -f2,4,5 | tr '\n' ' ')
[ "$items" = "threshold,50,2026-10-02T10:00:00Z threshold,70,2026-10-02T12:00:00Z " ] ||
    problem "notify at a later as-of: items '$items'"
t 0 "run at the notify's as-of" --db "$db" run --rates "$N/rates.csv" --as-of 2026-10-03T00:00:00Z \
    --out "$tmp/dir" "$N/bundle"
cmp -s "$tmp/box/notifications.csv" "$tmp/dir/notifications.csv" ||
    problem "run at the notify's as-of: not the notify's digest"
grep -q "1 digest (0 new)" "$tmp/err" || problem "run at the notify's as-of: $(tail -n 1 "$tmp/err")"

# a re-run exits 3 as the first run did (outputs.md), and its summary line
# says why: the rows were quarantined when the bundles were first ingested
rm_db "$db"; rm -rf "$tmp/dir"
for label in "run of the fixtures" "the same run again"; do
    t 3 "$label" --db "$db" run --rates "$F/rates.csv" --as-of 2026-11-05T00:00:00Z \
        --out "$tmp/dir" "$F/gale.tar.gz" "$F/process.zip" "$F/agent-platform"
done
tail -n 1 "$tmp/err" | grep -q " 0 rows loaded, 0 duplicates, 0 quarantined (when first ingested: 2 quarantined, 0 rejected), 1 file skipped, 6 accounts reported, 5 digests (0 new)," ||
    problem "a re-run's summary does not say why it exits 3: $(tail -n 1 "$tmp/err")"

# A bundle the file system will not let tally read (an upload with the wrong
# owner) is an I/O error, 74, and records nothing: a reject would be kept for
# good and never retried.  Root reads everything, so this runs as nobody.
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null && id nobody >/dev/null 2>&1; then
    mkdir -p "$tmp/perm"
    cp "$F/gale.tar.gz" "$tmp/perm/"
    chmod 000 "$tmp/perm/gale.tar.gz"
    chown -R nobody "$tmp/perm"
    chmod 755 "$tmp"
    setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups \
        "$TALLY" --db "$tmp/perm/p.db" ingest "$tmp/perm/gale.tar.gz" </dev/null >/dev/null 2>"$tmp/err"
    rc=$?
    [ "$rc" = 74 ] || problem "unreadable bundle: exit $rc (expected 74): $(head -1 "$tmp/err")"
    grep -q "Permission denied" "$tmp/err" || problem "unreadable bundle: no reason given: $(head -1 "$tmp/err")"
    n=$(sqlite3 "$tmp/perm/p.db" "select count(*) from rejects" 2>/dev/null || echo 0)
    [ "$n" = 0 ] || problem "unreadable bundle: $n rejects recorded"
    # an unreadable file inside a directory bundle: the message says which bundle
    mkdir -p "$tmp/perm/dirb"
    cp "$F/agent-platform/"*.csv "$tmp/perm/dirb/"
    chmod 000 "$tmp/perm/dirb/runs.csv"
    chown -R nobody "$tmp/perm/dirb"
    setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups \
        "$TALLY" --db "$tmp/perm/p.db" ingest "$tmp/perm/dirb" </dev/null >/dev/null 2>"$tmp/err"
    rc=$?
    [ "$rc" = 74 ] || problem "unreadable entry: exit $rc (expected 74): $(head -1 "$tmp/err")"
    grep -q "'dirb': entry 'runs.csv': Permission denied" "$tmp/err" ||
        problem "unreadable entry: the bundle is not named: $(head -1 "$tmp/err")"
    # a DIR an admin made read-only is still replaced, keeps its mode, and
    # leaves no tree beside it (root ignores modes, so this runs as nobody)
    mkdir -p "$tmp/perm/ro" "$tmp/perm/in"
    cp "$F/rates.csv" "$F/gale.tar.gz" "$tmp/perm/in/"
    chown -R nobody "$tmp/perm"
    chmod 0555 "$tmp/perm/ro"
    for i in 1 2; do
        setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups \
            "$TALLY" --db "$tmp/perm/ro.db" run --rates "$tmp/perm/in/rates.csv" --as-of 2026-11-05T00:00:00Z \
            --out "$tmp/perm/ro" "$tmp/perm/in/gale.tar.gz" </dev/null >/dev/null 2>"$tmp/err"
        rc=$?
        [ "$rc" = 0 ] || problem "run --out a read-only DIR ($i): exit $rc: $(head -1 "$tmp/err")"
    done
    [ "$(stat -c %a "$tmp/perm/ro")" = 555 ] || problem "run --out a read-only DIR: mode $(stat -c %a "$tmp/perm/ro")"
    [ -e "$tmp/perm/ro/summary.csv" ] || problem "run --out a read-only DIR: no summary.csv"
    ls -a "$tmp/perm" | grep -q '^\.ro\.tally-' && problem "run --out a read-only DIR: a tree is left beside it"
    chmod 0755 "$tmp/perm/ro"
else
    note "note: unreadable-bundle and read-only DIR checks skipped (need root, setpriv and user nobody)"
fi

# Row rejects printed before the bundle turned out to be rejected whole (its
# manifest disagrees) are rolled back with it: the reject line says so.
mkdir -p "$tmp/voided"
printf 'event_id,account_id,ts,kind,resource_id\nr1,a1,2026-10-01T00:00:00Z,agent,x"y\nr2,a1,2026-10-01T00:00:00Z,agent,z\n' \
    >"$tmp/voided/runs.csv"
printf 'file,rows,sha256\nruns.csv,1,%s\n' "$(sha256sum "$tmp/voided/runs.csv" | cut -d' ' -f1)" \
    >"$tmp/voided/manifest.csv"
rm_db "$db"
t 65 "bundle rejected after row rejects" --db "$db" ingest "$tmp/voided" || :
grep -q "quote_error" "$tmp/err" || problem "voided row rejects: no quote_error line: $(head -1 "$tmp/err")"
grep -q "rejected: manifest_mismatch: .* (the whole bundle: its row rejects above are not kept)" "$tmp/err" ||
    problem "voided row rejects: the bundle's reject does not void them: $(grep rejected: "$tmp/err")"
[ "$(sqlite3 "$db" 'select count(*) from rejects')" = 1 ] || problem "voided row rejects: rows were kept"

# Two accounts of 5e18 micro-credits each: the finance totals pass int64,
# which is no error (semantics §1: computed in 128 bits); they show 1e13.
mkdir -p "$tmp/bigsum"
printf 'account_id,name,edition,admin_email,cycle_anchor,updated_at\n' >"$tmp/bigsum/accounts.csv"
for a in a1 a2; do
    printf '%s,Big,gale,ops@big.example,2026-10-01,2026-09-01T00:00:00Z\n' $a >>"$tmp/bigsum/accounts.csv"
done
awk 'BEGIN { print "txn_id,account_id,ts,pool,type,amount,expires_at,reference";
             for (i = 0; i < 10000; i++) printf "t%d,a%d,2026-10-02T00:00:00Z,credits,topup,1000000000,,\n", i, i % 2 + 1 }' \
    >"$tmp/bigsum/credits.csv"
rm_db "$db"; rm -rf "$tmp/dir"
t 0 "run whose report totals pass int64" --db "$db" run --rates "$F/rates.csv" --as-of 2026-10-05T00:00:00Z \
    --out "$tmp/dir" "$tmp/bigsum" || :
tail -n 1 "$tmp/err" | grep -q " 2 accounts reported," ||
    problem "report totals past int64: $(tail -n 1 "$tmp/err")"
unzip -p "$tmp/dir/finance.xlsx" xl/worksheets/sheet1.xml 2>/dev/null | grep -q "<v>10000000000000</v>" ||
    problem "report totals past int64: the Summary totals do not show 1e13 credits"

# A rate card with CR-only line ends is refused for what it is, as a bundle
# file is, not after a warning per "unknown column" its rows became
printf 'hardware,category,credits_per_hour,effective_from\rh,model,1,2026-01-01T00:00:00Z\rg,model,2,2026-01-01T00:00:00Z\r' \
    >"$tmp/cr-card.csv"
rm_db "$db"
t 65 "rates with CR-only line ends" --db "$db" rates "$tmp/cr-card.csv" || :
grep -q "line 1: missing_column: the header holds a CR" "$tmp/err" ||
    problem "CR-only rate card: not named: $(head -1 "$tmp/err")"
grep -q "unknown column" "$tmp/err" && problem "CR-only rate card: unknown-column warnings"

# config is not in the spec's list of commands: its missing summary is a note
"$TALLY" --db "$db" config </dev/null >"$tmp/out" 2>"$tmp/err" || problem "config exited $?"
[ -s "$tmp/out" ] || problem "config wrote nothing to stdout"
# each setting with the range set_one accepts, so an edit is right first time
grep -A2 -x '# hours after a cycle end before it closes (default)' "$tmp/out" | tr '\n' '|' |
    grep -q -x '# hours after a cycle end.*|# a whole number, 0 to 87600|grace_hours = 48|' ||
    problem "config: grace_hours not printed with its range: $(grep -B2 '^grace_hours' "$tmp/out" | tr '\n' '|')"
grep -B1 -x 'finetune_minimum = 25.000000' "$tmp/out" | grep -q -x '# credits, 0 to 1000000000.000000' ||
    problem "config: finetune_minimum not printed with its range"
[ -n "$(tail -n 1 "$tmp/err")" ] || note "note: 'tally config' prints no summary line on stderr"

[ "$problems" = 0 ] || fail "$problems problems (above)"
echo "ok"
