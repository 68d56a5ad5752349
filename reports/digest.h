/*
 * digest.h — notification digests: the notify stage of `tally run` and the
 * `tally notify` command (spec semantics.md §5, §10 "One digest per account
 * and as-of"; outputs.md "Digest e-mails", notifications.csv).
 *
 * The reconciliation engine writes e-mail items into the ledger's `items`
 * table; this module delivers them.  A digest is one MIME e-mail per account
 * holding every undelivered item, oldest first.  It is rendered once, from
 * templates/ (reports/mustache.h), stored with its Message-ID and full bytes
 * in `digests`, and from then on every file and every hand-off is written
 * from the stored bytes, never re-rendered: a re-run, or a run killed
 * between the commit and the files, gives the same bytes.
 *
 * Exactly once:
 *   - an item gets a digest_id once, in the transaction that stores its
 *     digest, and is never taken again;
 *   - digests are created only at an as-of later than every as-of notify has
 *     run at before (ledger state "notify_as_of"): a re-run at the same as-of
 *     creates none and shows the same digests again; items its new data
 *     brought wait for the next as-of (§10);
 *   - a digest is handed to sendmail until one hand-off succeeds, and marked
 *     handed_off in its own small transaction right after; a crash between
 *     a successful hand-off and that commit is the one window in which the
 *     next run sends it again (receivers can deduplicate on the Message-ID).
 *
 * Outbox backlog.  The outbox is written inside a report directory that is
 * swapped in after the digests are committed.  When the swap fails, or the
 * run dies before it, a night's digests would reach no outbox, and the
 * next night, at a later as-of, would write only its own.  So each digest
 * records the as-of of the outbox that first showed it (shown_as_of, set by
 * tly_notify_shown() once that outbox is in place), and the outbox of an
 * as-of holds its own digests (ACCOUNT.eml) and the earlier ones no outbox
 * has shown, or that it showed itself (ACCOUNT+YYYYMMDDThhmmssZ.eml, their
 * as-of: '+' is in no account id); notifications.csv lists their items
 * too.  A re-run at the same as-of shows the same set again.  The window
 * left is a crash between the swap and tly_notify_shown(): the next outbox
 * shows those digests again.
 *
 * Not this module's job: reconciling.  tly_notify_run() delivers the items
 * the last reconcile wrote (`tally notify` reconciles at its as-of first).
 */
#ifndef TLY_DIGEST_H
#define TLY_DIGEST_H

#include <stdint.h>

#include "ledger.h"
#include "settings.h"

struct tly_notify_stats {
    long digests_created;   /* new digests stored by this call */
    long digests_shown;     /* digests written to the outbox (backlog included) */
    long items;             /* rows of notifications.csv (items of those digests) */
    long handed_off;        /* successful hand-offs by this call (any as-of) */
    long handoff_failed;    /* failed hand-offs, retried by the next run */
    long skipped;           /* accounts refused (bad address, bad item): items wait */
};

/*
 * The notify stage.  Creates at most one digest per account for 'as_of'
 * holding every undelivered item with ts <= 'as_of' (oldest first: ts, then
 * item id), stores them in the ledger in one transaction, then writes every
 * digest of this as-of to 'outbox_dir'/ACCOUNT.eml and the notifications.csv
 * at 'csv_path'.  When 'sendmail_cmd' is non-empty, pipes each digest not
 * yet handed off (any as-of) that was created with a sendmail command
 * (one created without it went to the outbox only and is never handed
 * off) to `/bin/sh -c 'sendmail_cmd'` on stdin (as to
 * `/usr/sbin/sendmail -t -i`; TALLY_ACCOUNT_ID and TALLY_MESSAGE_ID are set
 * in its environment) and records each success.  A command still running
 * after settings->sendmail_timeout_s seconds (0: no limit) is killed with
 * its process group, and the digests not yet handed off wait for the next
 * run (counted in st->handoff_failed).
 *
 * 'outbox_dir' must exist; files are written under temporary names in it and
 * renamed.  'st' is filled in full, also on error.
 *
 * An account whose admin_email is not a plain RFC 5322 addr-spec, whose id
 * or edition is not valid, or whose item details are unreadable, is skipped
 * with one stderr line (a second guard: ingest already quarantines these);
 * its items stay undelivered.  A failed hand-off is one stderr line and a
 * count in st->handoff_failed, and the call still returns TLY_OK: the
 * caller finishes its outputs and then decides the exit status (`tally
 * notify` exits 73).  Errors: TLY_ERR_USAGE (a bad sender), TLY_ERR_INPUT (a bad template),
 * TLY_ERR_OUTPUT (files), TLY_ERR_LEDGER, TLY_ERR_NOMEM; on an error before
 * the commit nothing is stored.
 *
 * Templates are looked up in settings->templates_dir when set, else in
 * ./templates when it holds digest.txt (a development checkout), else in
 * TALLY_DATADIR/templates; tly_notify_check() loads them all once before
 * anything is committed, and they are read again when a digest is created.
 */
int tly_notify_run(struct tly_ledger *l, const struct tly_settings *s, int64_t as_of,
                   const char *outbox_dir, const char *csv_path, const char *sendmail_cmd,
                   struct tly_notify_stats *st);

/*
 * Records that the outbox of 'as_of' is in place: every digest up to it
 * not shown before was shown there (see "Outbox backlog").  Call it after
 * the swap that published the outbox; errors: TLY_ERR_LEDGER.
 */
int tly_notify_shown(struct tly_ledger *l, int64_t as_of);

/*
 * What tly_notify_run() would refuse for its settings, checked before a
 * command commits anything: a sender that is not one mailbox
 * (TLY_ERR_USAGE, like every bad setting) and templates that do not load
 * (TLY_ERR_IO when one is missing) or do not render sample digests of
 * every kind of item (TLY_ERR_INPUT: malformed, or a {{name}} with no
 * value).  Otherwise a nightly run would find a mistake in its
 * configuration only after ingest had committed the night's bundles.
 */
int tly_notify_check(const struct tly_settings *s);

/* The two guards, exposed for tests: 1 when usable, else 0. */
int tly_digest_valid_address(const char *addr);      /* RFC 5322 addr-spec, ASCII */
int tly_digest_valid_account_id(const char *id);     /* inputs.md "Identifiers", no '/' */

/* The template directory the rules above choose (a static or settings string). */
const char *tly_digest_templates_dir(const struct tly_settings *s);

#endif
