/*
 * digest.c — notification digests: create, store, write, hand off
 * (spec semantics.md §5, §10; outputs.md "Digest e-mails").
 *
 * tly_notify_run() has three stages, each with its own banner below:
 *
 *   create   one transaction: for each account with undelivered items up to
 *            the as-of, render the e-mail (templates + GMime), store it in
 *            `digests` and point its items at it;
 *   write    from the stored bytes only: outbox/ACCOUNT.eml and
 *            notifications.csv for the digests of this as-of, and the
 *            backlog no outbox in place has shown (digest.h);
 *   hand off each digest created for it and not yet handed off, piped to
 *            the sendmail command, marked handed off per success in a
 *            transaction of its own.
 *
 * Everything that comes from input data (names, ids, addresses, the item
 * details) is cleaned before it is used: control characters become spaces,
 * invalid UTF-8 becomes U+FFFD.  It goes only into the bodies (which are
 * quoted-printable, so no line exceeds 998 octets whatever a name's length)
 * and never into a header, except the admin address, which must first pass
 * an RFC 5322 addr-spec check.  The HTML templates escape every value.
 *
 * Output is deterministic: Date is the as-of, the Message-ID and the MIME
 * boundary derive from sha256(account id) and the as-of, and no header
 * carries the current time or a random value.
 */
#include "digest.h"
#include "alloc.h"
#include "csvout.h"
#include "error.h"
#include "money.h"
#include "mustache.h"
#include "timeutil.h"

#include <errno.h>
#include <fcntl.h>
#include <gmime/gmime.h>
#include <jansson.h>
#include <limits.h>
#include <nettle/sha2.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define STATE_NOTIFY_AS_OF "notify_as_of"    /* latest as-of digests were created at */
#define PATH_CAP 4096
#define STOP_MESSAGE "You've used all your available credits. " \
                     "Please add more credits to your account to continue."

/* ------------------------------------------------------------------------
 * Tables: item kinds, editions, deployment categories
 * ---------------------------------------------------------------------- */

enum kind { K_THRESHOLD, K_NEGATIVE, K_STOPPED, K_DEPLOYED, K_UNDEPLOYED, NKINDS };

/*
 * 'rank' orders items by urgency for the subject: a stop for credits, then
 * a negative balance, then thresholds (a higher p first: rank + p), then
 * script deployments.
 */
static const struct kind_info {
    const char *name;       /* items.item, and templates/item-NAME.{txt,html} */
    int rank;
} kinds[NKINDS] = {
    [K_THRESHOLD]  = { "threshold", 200 },
    [K_NEGATIVE]   = { "negative_balance", 400 },
    [K_STOPPED]    = { "deployments_stopped", 500 },
    [K_DEPLOYED]   = { "script_deployed", 100 },
    [K_UNDEPLOYED] = { "script_undeployed", 100 },
};

/* spec README "The three editions" */
static const struct edition {
    const char *id, *product, *runs_unit;
} editions[] = {
    { "gale", "GALE", "agent runs" },
    { "agent-platform", "Agent Platform", "tool runs" },
    { "process", "AI for Process", "workflow runs" },
};

/* How a deployment category reads in a sentence ("Invoice OCR (OCR)"). */
static const struct {
    const char *category, *label;
} categories[] = {
    { "browser", "browser automation" },
    { "finetune", "fine-tuning job" },
    { "guardrail", "guardrail" },
    { "model", "model" },
    { "ocr", "OCR" },
    { "script", "custom script" },
};

/* ------------------------------------------------------------------------
 * Text hygiene and the guards
 * ---------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at 's' (0 when invalid); its code point in *cp. */
static size_t utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
    size_t len, i;
    uint32_t c, min;

    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    if ((s[0] & 0xe0) == 0xc0) {
        len = 2, c = s[0] & 0x1f, min = 0x80;
    } else if ((s[0] & 0xf0) == 0xe0) {
        len = 3, c = s[0] & 0x0f, min = 0x800;
    } else if ((s[0] & 0xf8) == 0xf0) {
        len = 4, c = s[0] & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return len;
}

/*
 * A copy of 's' fit for a body: valid UTF-8 stays; C0/C1 control characters
 * (CR, LF and tab included), DEL and the Unicode line separators become a
 * space; each invalid byte becomes U+FFFD.  Caller frees; NULL = no memory.
 */
static char *clean_text(const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t n = strlen(s), j = 0;
    char *out;

    if (n > (SIZE_MAX - 1) / 3)
        return NULL;
    if (!(out = tly_malloc(n * 3 + 1)))     /* worst case: every byte becomes U+FFFD */
        return NULL;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t len = utf8_next(u + i, n - i, &cp);
        if (len == 0) {
            memcpy(out + j, "\xef\xbf\xbd", 3);
            j += 3;
            i++;
        } else if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029) {
            out[j++] = ' ';
            i += len;
        } else {
            memcpy(out + j, s + i, len);
            j += len;
            i += len;
        }
    }
    out[j] = '\0';
    return out;
}

static int is_atext(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

/* RFC 5322 dot-atom-text over [s, e): atext runs joined by single dots. */
static int dot_atom(const char *s, const char *e)
{
    if (s == e || *s == '.' || e[-1] == '.')
        return 0;
    for (const char *p = s; p < e; p++)
        if (!(is_atext(*p) || (*p == '.' && p[-1] != '.')))
            return 0;
    return 1;
}

/*
 * The second guard on admin_email (the first is ingest's quarantine): an
 * RFC 5322 addr-spec in plain ASCII, local-part a dot-atom or a quoted-string,
 * domain a dot-atom or a domain-literal, nothing else (no display name, no
 * comments, no CR/LF or other control character, at most 254 octets).
 */
int tly_digest_valid_address(const char *addr)
{
    size_t n = addr ? strlen(addr) : 0;
    const char *at, *p, *end = addr + n;

    if (n < 3 || n > 254)
        return 0;
    for (p = addr; p < end; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            return 0;
    if (addr[0] == '"') {
        for (p = addr + 1; p < end && *p != '"'; p++)
            if (*p == '\\' && ++p == end)
                return 0;
        if (p >= end || p[1] != '@')
            return 0;
        at = p + 1;
    } else {
        at = strrchr(addr, '@');
        if (!at || !dot_atom(addr, at))
            return 0;
    }
    if (at - addr > 64 + 2)                 /* RFC 5321 local-part limit, quotes aside */
        return 0;
    p = at + 1;
    if (p < end && *p == '[') {
        if (end[-1] != ']' || end - p < 3)
            return 0;
        for (const char *q = p + 1; q < end - 1; q++)
            if (*q == '[' || *q == ']' || *q == '\\' || *q == ' ')
                return 0;
        return 1;
    }
    return dot_atom(p, end);
}

/* 's' for an error line: printable ASCII kept, anything else '?', cut at 'cap'. */
static const char *printable(char *buf, size_t cap, const char *s)
{
    size_t j = 0;
    for (; s && *s && j + 1 < cap; s++)
        buf[j++] = (unsigned char)*s >= 0x20 && (unsigned char)*s < 0x7f ? *s : '?';
    buf[j] = '\0';
    return buf;
}

/* spec inputs.md "Identifiers": 1-128 bytes of [A-Za-z0-9._:@-], first a letter or digit. */
int tly_digest_valid_account_id(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n < 1 || n > 128)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || !strchr("._:@-", c)))
            return 0;
    }
    return 1;
}

/* ------------------------------------------------------------------------
 * Figures as people read them
 * ---------------------------------------------------------------------- */

/* 1234567 -> "1,234,567" */
static void group_digits(char *out, size_t cap, uint64_t v)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v), j = 0;
    for (int i = 0; i < n && (size_t)j + 2 < cap; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            out[j++] = ',';
        out[j++] = tmp[i];
    }
    out[j] = '\0';
}

/*
 * Credits for reading: 2 decimals, half away from zero, thousands grouped
 * ("1,234.50").  An amount that would read 0.00 but is not zero is shown
 * exactly, so a balance of -0.000063 is not called "-0.00" or "0.00".
 */
static void fmt_credits(char *buf, size_t cap, int64_t micro)
{
    /* |micro| < 2^63, so its hundredths fit int64 */
    int64_t cents = (int64_t)tly_div_half_up(micro, 10000);
    uint64_t mag;
    char whole[40];

    if (cents == 0 && micro != 0) {
        size_t n;
        tly_format_micro(buf, micro);
        n = strlen(buf);
        while (n > 0 && buf[n - 1] == '0')
            buf[--n] = '\0';
        return;
    }
    mag = cents < 0 ? (uint64_t)0 - (uint64_t)cents : (uint64_t)cents;
    group_digits(whole, sizeof whole, mag / 100);
    snprintf(buf, cap, "%s%s.%02u", cents < 0 ? "-" : "", whole, (unsigned)(mag % 100));
}

/* "2026-10-28 19:06:41 UTC" */
static void fmt_when(char *buf, size_t cap, int64_t ts)
{
    char iso[TLY_TS_LEN];
    tly_format_ts(iso, ts);                 /* YYYY-MM-DDThh:mm:ssZ */
    snprintf(buf, cap, "%.10s %.8s UTC", iso, iso + 11);
}

/* ------------------------------------------------------------------------
 * Templates
 * ---------------------------------------------------------------------- */

struct tpl_set {
    struct tly_mustache *subject;
    struct tly_mustache *frame[2];          /* [0] text, [1] HTML */
    struct tly_mustache *item[NKINDS][2];
};

/*
 * Where a binary finds its own templates: beside it in a development
 * checkout (./tally) or two levels up (build/san/tally), or in the tree it
 * was installed into, whatever the PREFIX it was built with (bin/tally ->
 * share/tally/templates).  The tests and the spec's acceptance runs call
 * the binary from other working directories, so the binary's own location
 * is what counts.
 */
static const char *templates_beside_binary(void)
{
    static char dir[PATH_CAP];
    static const char *const rel[] = { "templates", "../../templates", "../share/tally/templates" };
    char exe[PATH_CAP], probe[PATH_CAP + 32], *slash;
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);

    if (n <= 0)
        return NULL;
    exe[n] = '\0';
    if (!(slash = strrchr(exe, '/')))
        return NULL;
    *slash = '\0';
    for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
        snprintf(probe, sizeof probe, "%s/%s/digest.txt", exe, rel[i]);
        if (access(probe, R_OK) == 0 && snprintf(dir, sizeof dir, "%s/%s", exe, rel[i]) < (int)sizeof dir)
            return dir;
    }
    return NULL;
}

const char *tly_digest_templates_dir(const struct tly_settings *s)
{
    const char *beside;

    if (s->templates_dir && s->templates_dir[0])
        return s->templates_dir;
    /* the binary's own first: another installed copy may be older */
    if ((beside = templates_beside_binary()))
        return beside;
    if (access(TALLY_DATADIR "/templates/digest.txt", R_OK) == 0)
        return TALLY_DATADIR "/templates";
    /* a development checkout run from its top directory uses its own templates */
    if (access("templates/digest.txt", R_OK) == 0)
        return "templates";
    return TALLY_DATADIR "/templates";
}

static int load_one(const char *dir, const char *base, const char *ext, struct tly_mustache **out)
{
    char path[PATH_CAP];
    if (snprintf(path, sizeof path, "%s/%s.%s", dir, base, ext) >= (int)sizeof path)
        return tly_error(TLY_ERR_INPUT, "template directory '%s': path too long", dir);
    return tly_mustache_load(path, TLY_MUSTACHE_STRICT, out);
}

static void templates_free(struct tpl_set *t)
{
    tly_mustache_free(t->subject);
    for (int m = 0; m < 2; m++) {
        tly_mustache_free(t->frame[m]);
        for (int k = 0; k < NKINDS; k++)
            tly_mustache_free(t->item[k][m]);
    }
    memset(t, 0, sizeof *t);
}

static int templates_load(struct tpl_set *t, const struct tly_settings *s)
{
    static const char *const ext[2] = { "txt", "html" };
    const char *dir = tly_digest_templates_dir(s);
    char base[64];
    int err;

    if ((err = load_one(dir, "subject", "txt", &t->subject)))
        goto fail;
    for (int m = 0; m < 2; m++) {
        if ((err = load_one(dir, "digest", ext[m], &t->frame[m])))
            goto fail;
        for (int k = 0; k < NKINDS; k++) {
            snprintf(base, sizeof base, "item-%s", kinds[k].name);
            if ((err = load_one(dir, base, ext[m], &t->item[k][m])))
                goto fail;
        }
    }
    return TLY_OK;
fail:
    templates_free(t);
    return err;
}

/*
 * Renders 't' with 'ctx'; line ends become LF (a template saved with CRLF
 * must not put raw CRs into the body).  Caller frees *out.
 */
static int render(const struct tly_mustache *t, const json_t *ctx, char **out)
{
    size_t n, j = 0;
    char *s;
    int err;

    if ((err = tly_mustache_render(t, ctx, &s, &n)))
        return err;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\r') {
            if (i + 1 < n && s[i + 1] == '\n')
                continue;
            s[j++] = '\n';
        } else {
            s[j++] = s[i];
        }
    }
    s[j] = '\0';
    *out = s;
    return TLY_OK;
}

/* ------------------------------------------------------------------------
 * One account's digest: the template contexts
 * ---------------------------------------------------------------------- */

struct account {
    char *id, *name, *email;
    const struct edition *ed;
};

struct item {
    int64_t id, ts;
    enum kind kind;
    int threshold;
    json_t *ctx;            /* what item-KIND.* and subject.txt see */
};

static void account_release(struct account *a)
{
    tly_free(a->id);
    tly_free(a->name);
    tly_free(a->email);
    memset(a, 0, sizeof *a);
}

static void items_release(struct item *it, size_t n)
{
    for (size_t i = 0; i < n; i++)
        json_decref(it[i].ctx);
}

static void items_free(struct item *it, size_t n)
{
    items_release(it, n);
    tly_free(it);
}

/* Sets ctx[key] to a cleaned copy of 's'; -1 when out of memory. */
static int set_clean(json_t *ctx, const char *key, const char *s)
{
    char *c = clean_text(s);
    int rc = c ? json_object_set_new(ctx, key, json_string(c)) : -1;
    tly_free(c);
    return rc;
}

static int set_str(json_t *ctx, const char *key, const char *s)
{
    return json_object_set_new(ctx, key, json_string(s));
}

/* A detail string field, or NULL (absent, not a string, or empty). */
static const char *dstr(const json_t *detail, const char *key)
{
    const char *s = json_string_value(json_object_get(detail, key));
    return s && s[0] ? s : NULL;
}

/*
 * The deployments a negative_balance or deployments_stopped item lists:
 * name (the resource id when it has none), the category in words, and the
 * deployment id when it differs from the resource id.  Returns -1 when out
 * of memory, 1 when the list is malformed.
 */
static int deployments_ctx(json_t *ctx, const json_t *detail)
{
    const json_t *list = json_object_get(detail, "deployments");
    json_t *out = json_array();
    size_t i;

    if (!out || json_object_set_new(ctx, "deployments", out))
        return -1;
    if (!list)
        return json_object_set_new(ctx, "has_deployments", json_false()) ? -1 : 0;
    if (!json_is_array(list))
        return 1;
    for (i = 0; i < json_array_size(list); i++) {
        const json_t *d = json_array_get(list, i);
        const char *cat = dstr(d, "category"), *rid = dstr(d, "resource_id");
        const char *did = dstr(d, "deployment_id"), *name = dstr(d, "name"), *label = NULL;
        json_t *o;

        if (!json_is_object(d) || !rid)
            return 1;
        for (size_t k = 0; cat && k < sizeof categories / sizeof categories[0]; k++)
            if (!strcmp(categories[k].category, cat))
                label = categories[k].label;
        if (!(o = json_object()) || json_array_append_new(out, o))
            return -1;
        if (set_clean(o, "name", name ? name : rid) || set_clean(o, "resource_id", rid) ||
            set_clean(o, "kind", label ? label : cat ? cat : "deployment") ||
            set_clean(o, "category", cat ? cat : "") ||
            set_clean(o, "deployment_id", did ? did : rid))
            return -1;
        if (did && strcmp(did, rid) && set_clean(o, "other_id", did))
            return -1;
    }
    return json_object_set_new(ctx, "has_deployments", json_boolean(i > 0)) ? -1 : 0;
}

/* Threshold figures: credits as 37.50, runs as 5,000 (outputs the detail wrote). */
static int threshold_ctx(json_t *ctx, const json_t *detail, const char *pool,
                         const struct edition *ed)
{
    const char *used = dstr(detail, "used"), *total = dstr(detail, "total");
    const char *pct = dstr(detail, "pct"), *why;
    int runs = pool && !strcmp(pool, "runs");
    char u[48], t[48];
    int64_t uv, tv;

    if (!used || !total || !pool || (!runs && strcmp(pool, "credits")))
        return 1;
    if (runs) {
        if (tly_parse_int(used, strlen(used), 0, INT64_MAX, &uv, &why) ||
            tly_parse_int(total, strlen(total), INT64_MIN + 1, INT64_MAX, &tv, &why))
            return 1;
        group_digits(u, sizeof u, (uint64_t)uv);
        if (tv < 0) {
            t[0] = '-';
            group_digits(t + 1, sizeof t - 1, (uint64_t)-tv);
        } else {
            group_digits(t, sizeof t, (uint64_t)tv);
        }
    } else {
        if (tly_parse_micro(used, strlen(used), INT64_MAX, &uv, &why) ||
            tly_parse_micro(total, strlen(total), INT64_MAX, &tv, &why))
            return 1;
        fmt_credits(u, sizeof u, uv);
        fmt_credits(t, sizeof t, tv);
    }
    if (set_str(ctx, "used", u) || set_str(ctx, "total", t) ||
        set_clean(ctx, "pct", pct ? pct : "") ||
        set_str(ctx, "unit", runs ? ed->runs_unit : "credits") ||
        json_object_set_new(ctx, runs ? "pool_runs" : "pool_credits", json_true()))
        return -1;
    return 0;
}

static int money_field(json_t *ctx, const json_t *detail, const char *key)
{
    const char *s = dstr(detail, key), *why;
    char buf[48];
    int64_t v;

    if (!s || tly_parse_micro(s, strlen(s), INT64_MAX, &v, &why))
        return 1;
    fmt_credits(buf, sizeof buf, v);
    return set_str(ctx, key, buf) ? -1 : 0;
}

/*
 * The template context of one item, from its row and its detail JSON: the
 * fields every item has (item, when, p, pool, a true flag named after its
 * kind) and the figures of its kind.  Returns TLY_OK, TLY_ERR_NOMEM, or
 * TLY_ERR_INPUT after reporting a detail the templates cannot show.
 */
static int item_ctx(const struct account *a, struct item *it, const char *pool,
                    const char *detail_text)
{
    json_t *detail = json_loads(detail_text, JSON_REJECT_DUPLICATES, NULL), *ctx = json_object();
    char when[64], stop[64];
    const char *s, *why;
    int rc = 1;

    it->ctx = ctx;
    if (!ctx) {
        json_decref(detail);
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    }
    fmt_when(when, sizeof when, it->ts);
    if (!json_is_object(detail))
        goto bad;
    if (set_str(ctx, "item", kinds[it->kind].name) || set_str(ctx, "when", when) ||
        json_object_set_new(ctx, kinds[it->kind].name, json_true()) ||
        (pool && set_clean(ctx, "pool", pool)) ||
        (it->kind == K_THRESHOLD && json_object_set_new(ctx, "p", json_integer(it->threshold))))
        goto nomem;

    switch (it->kind) {
    case K_THRESHOLD:
        rc = threshold_ctx(ctx, detail, pool, a->ed);
        break;
    case K_NEGATIVE:
        if ((rc = money_field(ctx, detail, "balance")) == 0 &&
            (rc = money_field(ctx, detail, "negative_limit")) == 0)
            rc = deployments_ctx(ctx, detail);
        break;
    case K_STOPPED:
        s = dstr(detail, "stop_at");
        if (s) {
            int64_t t;
            if (tly_parse_ts(s, strlen(s), &t, &why)) {
                rc = 1;
                break;
            }
            fmt_when(stop, sizeof stop, t);
        } else {
            memcpy(stop, when, sizeof stop);
        }
        s = dstr(detail, "message");
        rc = set_str(ctx, "stop_at", stop) || set_clean(ctx, "message", s ? s : STOP_MESSAGE)
                 ? -1 : deployments_ctx(ctx, detail);
        break;
    case K_DEPLOYED:
    case K_UNDEPLOYED:
        s = dstr(detail, "resource_id");
        if (!s)
            break;
        rc = set_clean(ctx, "resource_id", s) ||
             set_clean(ctx, "name", dstr(detail, "name") ? dstr(detail, "name") : s) ||
             set_clean(ctx, "deployment_id",
                       dstr(detail, "deployment_id") ? dstr(detail, "deployment_id") : s) ||
             (dstr(detail, "endpoint") && set_clean(ctx, "endpoint", dstr(detail, "endpoint")))
                 ? -1 : 0;
        break;
    case NKINDS:
        break;
    }
    if (rc < 0)
        goto nomem;
    if (rc > 0)
        goto bad;
    json_decref(detail);
    return TLY_OK;
nomem:
    json_decref(detail);
    return tly_error(TLY_ERR_NOMEM, "out of memory");
bad:
    json_decref(detail);
    return tly_error(TLY_ERR_INPUT, "account '%s': item %lld (%s): unreadable detail: "
                     "no digest, its items wait", a->id, (long long)it->id, kinds[it->kind].name);
}

/* ------------------------------------------------------------------------
 * One account's digest: the MIME message
 * ---------------------------------------------------------------------- */

/*
 * digests.handed_off.  outputs.md: --sendmail "hands each new digest" to
 * the command, and a failed one is retried.  A digest created with no
 * command to hand it to went to the outbox only, and stays there: turning
 * --sendmail on later must not mail every notice ever made.
 */
enum { HANDOFF_WAITING = 0, HANDOFF_DONE = 1, HANDOFF_OUTBOX_ONLY = 2 };

struct notify {
    struct tly_ledger *l;
    const struct tly_settings *s;
    int64_t as_of;
    int handing_off;                /* a sendmail command: new digests wait for it */
    struct tly_notify_stats *st;
    InternetAddressList *from;
    char domain[256];               /* the Message-IDs' right-hand side */
    struct tpl_set tpl;
    int tpl_loaded;
};

/*
 * The sender setting as a GMime address, once per run.  It must be exactly
 * one mailbox; its domain becomes the Message-IDs' right-hand side (a plain
 * hostname, else "tally.invalid").
 */
/*
 * GMime's parser drops what it cannot read, so "a@b.c # note" (a comment
 * the INI file kept) would send as a@b.c: the setting must be the address
 * alone, or end with "<address>" (the last one written: a quoted name may
 * hold another), with nothing after it but blanks.
 */
static int sender_whole(const char *sender, const char *addr)
{
    size_t n = strlen(addr), len = strlen(sender);
    const char *end = sender + len, *p, *last = NULL;

    while (end > sender && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (!strchr(sender, '<')) {
        sender += strspn(sender, " \t");
        return (size_t)(end - sender) == n && !strncmp(sender, addr, n);
    }
    for (p = sender; (p = strchr(p, '<')); p++)
        if (!strncmp(p + 1, addr, n) && p[n + 1] == '>')
            last = p;
    return last && last + n + 2 == end;
}

static int sender_parse(struct notify *nx)
{
    const char *sender = nx->s->sender ? nx->s->sender : "";
    InternetAddress *ia;
    const char *addr, *at;

    for (const char *p = sender; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            goto bad;
    nx->from = internet_address_list_parse(NULL, sender);
    if (!nx->from || internet_address_list_length(nx->from) != 1)
        goto bad;
    ia = internet_address_list_get_address(nx->from, 0);
    if (!INTERNET_ADDRESS_IS_MAILBOX(ia))
        goto bad;
    addr = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(ia));
    if (!addr || !tly_digest_valid_address(addr) || !sender_whole(sender, addr))
        goto bad;
    at = strrchr(addr, '@');
    snprintf(nx->domain, sizeof nx->domain, "%s", "tally.invalid");
    if (at && strlen(at + 1) < sizeof nx->domain && strspn(at + 1,
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") == strlen(at + 1))
        snprintf(nx->domain, sizeof nx->domain, "%s", at + 1);
    return TLY_OK;
bad:
    return tly_error(TLY_ERR_USAGE, "setting 'notify.sender': '%s' is not one e-mail address",
                     sender);
}

#define COMPACT_TS_LEN 24

/* An instant as 20261028T190641Z (for names: no '-' or ':'). */
static void compact_ts(char out[COMPACT_TS_LEN], int64_t ts)
{
    char iso[TLY_TS_LEN];
    size_t j = 0;

    tly_format_ts(iso, ts);
    for (const char *p = iso; *p && j + 1 < COMPACT_TS_LEN; p++)
        if (*p != '-' && *p != ':')
            out[j++] = *p;
    out[j] = '\0';
}

/* "tally.<24 hex of sha256(account id)>.<as-of as 20261028T190641Z>" */
static void message_id(char *out, size_t cap, const char *account, int64_t as_of,
                       const char *domain)
{
    uint8_t d[SHA256_DIGEST_SIZE];
    char hex[2 * 12 + 1], compact[COMPACT_TS_LEN];
    struct sha256_ctx c;

    sha256_init(&c);
    sha256_update(&c, strlen(account), (const uint8_t *)account);
    sha256_digest(&c, sizeof d, d);
    for (int i = 0; i < 12; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    compact_ts(compact, as_of);
    snprintf(out, cap, "tally.%s.%s@%s", hex, compact, domain);
}

/* A text/SUBTYPE part holding 'text' as UTF-8, quoted-printable. */
static GMimeObject *text_part(const char *subtype, const char *text)
{
    GMimeTextPart *part = g_mime_text_part_new_with_subtype(subtype);
    GMimeStream *mem;
    GMimeDataWrapper *w;

    if (!part)
        return NULL;
    /*
     * Not g_mime_text_part_set_text(): it picks "the best" charset and may
     * convert to ISO-8859-1.  The bytes stay UTF-8, and say so.
     */
    mem = g_mime_stream_mem_new_with_buffer(text, strlen(text));
    w = mem ? g_mime_data_wrapper_new_with_stream(mem, GMIME_CONTENT_ENCODING_DEFAULT) : NULL;
    if (mem)
        g_object_unref(mem);
    if (!w) {
        g_object_unref(part);
        return NULL;
    }
    g_mime_part_set_content(GMIME_PART(part), w);
    g_object_unref(w);
    g_mime_object_set_content_type_parameter(GMIME_OBJECT(part), "charset", "utf-8");
    /* quoted-printable keeps every line under 998 octets, however long a name is */
    g_mime_part_set_content_encoding(GMIME_PART(part), GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE);
    return GMIME_OBJECT(part);
}

/*
 * Builds the message and serialises it into *out (tly_malloc, *outlen
 * bytes).  Only checked values reach headers: the sender setting, the
 * addr-spec-checked recipient, the rendered subject (templates and numbers,
 * cleaned), the as-of and the Message-ID.
 */
static int mime_message(struct notify *nx, const struct account *a, const char *subject,
                        const char *text, const char *html, const char *msgid, char **out,
                        size_t *outlen)
{
    GMimeMessage *m = g_mime_message_new(TRUE);
    GMimeMultipart *alt = NULL;
    GMimeObject *tp = NULL, *hp = NULL;
    InternetAddress *to = NULL;
    GMimeStream *mem = NULL;
    GDateTime *date = NULL;
    GByteArray *bytes;
    char boundary[80];
    size_t left;
    int err = TLY_OK;

    *out = NULL;
    if (!m || !(alt = g_mime_multipart_new_with_subtype("alternative")) ||
        !(tp = text_part("plain", text)) || !(hp = text_part("html", html)) ||
        !(to = internet_address_mailbox_new(NULL, a->email)) ||
        !(date = g_date_time_new_from_unix_utc(nx->as_of)) || !(mem = g_mime_stream_mem_new())) {
        err = tly_error(TLY_ERR_NOMEM, "account '%s': cannot build the e-mail", a->id);
        goto out;
    }
    internet_address_list_append(g_mime_message_get_from(m), nx->from);
    internet_address_list_add(g_mime_message_get_addresses(m, GMIME_ADDRESS_TYPE_TO), to);
    g_mime_message_set_subject(m, subject, "utf-8");
    g_mime_message_set_date(m, date);
    g_mime_message_set_message_id(m, msgid);
    /* RFC 3834: no auto-replies to a machine-sent digest */
    g_mime_object_set_header(GMIME_OBJECT(m), "Auto-Submitted", "auto-generated", NULL);

    /*
     * "=_" cannot occur in quoted-printable or base64 text, so it is a safe
     * boundary; the Message-ID's left side (47 octets) keeps it under RFC
     * 2046's 70.
     */
    left = strcspn(msgid, "@");
    snprintf(boundary, sizeof boundary, "=_%.*s", (int)(left < 60 ? left : 60), msgid);
    g_mime_multipart_set_boundary(alt, boundary);
    g_mime_multipart_add(alt, tp);
    g_mime_multipart_add(alt, hp);
    g_mime_message_set_mime_part(m, GMIME_OBJECT(alt));

    if (g_mime_object_write_to_stream(GMIME_OBJECT(m), NULL, mem) < 0 ||
        g_mime_stream_flush(mem) < 0) {
        err = tly_error(TLY_ERR_OUTPUT, "account '%s': cannot serialise the e-mail", a->id);
        goto out;
    }
    bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
    if (!bytes || !(*out = tly_malloc(bytes->len + 2))) {
        err = tly_error(TLY_ERR_NOMEM, "out of memory");
        goto out;
    }
    memcpy(*out, bytes->data, bytes->len);
    *outlen = bytes->len;
    /* GMime stops right after the closing delimiter; a text file ends with a newline */
    if (*outlen == 0 || (*out)[*outlen - 1] != '\n')
        (*out)[(*outlen)++] = '\n';
    (*out)[*outlen] = '\0';
out:
    if (mem)
        g_object_unref(mem);
    if (date)
        g_date_time_unref(date);
    if (to)
        g_object_unref(to);
    if (hp)
        g_object_unref(hp);
    if (tp)
        g_object_unref(tp);
    if (alt)
        g_object_unref(alt);
    if (m)
        g_object_unref(m);
    return err;
}

/* Runs of white space become one space; the ends are trimmed (a subject is one line). */
static void one_line(char *s)
{
    size_t j = 0;
    int space = 0;
    for (size_t i = 0; s[i]; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c == 0x7f) {
            space = j > 0;
            continue;
        }
        if (space)
            s[j++] = ' ';
        space = 0;
        s[j++] = s[i];
    }
    s[j] = '\0';
}

static int urgency(const struct item *it)
{
    return kinds[it->kind].rank + (it->kind == K_THRESHOLD ? it->threshold : 0);
}

/* The most urgent item (spec §5 order, see kinds[]); the first of equals. */
static size_t most_urgent(const struct item *it, size_t n)
{
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (urgency(&it[i]) > urgency(&it[best]))
            best = i;
    return best;
}

/* What every template may use about the account (templates/README.md). */
static int account_fields(json_t *ctx, const struct account *a)
{
    return set_str(ctx, "product", a->ed->product) || set_str(ctx, "runs_unit", a->ed->runs_unit) ||
           set_clean(ctx, "account_id", a->id) || set_clean(ctx, "account_name", a->name);
}

/*
 * Renders the digest of 'a' holding 'it' (n > 0, oldest first) and builds
 * its message.  *out is tly_malloc'd.
 */
static int build_digest(struct notify *nx, const struct account *a, struct item *it, size_t n,
                        const char *msgid, char **out, size_t *outlen)
{
    json_t *sctx = json_object(), *fctx = json_object(), *list = json_array();
    char *subject = NULL, *body[2] = { NULL, NULL }, asof[64];
    size_t u = most_urgent(it, n);
    int err = TLY_OK;

    *out = NULL;
    fmt_when(asof, sizeof asof, nx->as_of);
    for (size_t i = 0; i < n; i++)
        if (account_fields(it[i].ctx, a))
            goto nomem;
    if (!sctx || !fctx || !list || account_fields(sctx, a) ||
        json_object_set(sctx, kinds[it[u].kind].name, it[u].ctx) ||
        (n > 1 && (json_object_set_new(sctx, "others", json_integer((json_int_t)n - 1)) ||
                   json_object_set_new(sctx, "others_one", json_boolean(n == 2)))))
        goto nomem;
    if ((err = render(nx->tpl.subject, sctx, &subject)))
        goto out;
    one_line(subject);

    if (account_fields(fctx, a) || set_str(fctx, "recipient", a->email) ||
        set_str(fctx, "as_of", asof) || set_str(fctx, "subject", subject) ||
        set_str(fctx, "message_id", msgid) ||
        json_object_set_new(fctx, "count", json_integer((json_int_t)n)) ||
        json_object_set_new(fctx, "many", json_boolean(n > 1)) ||
        json_object_set(fctx, "items", list))
        goto nomem;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_object();
        if (!e || json_array_append_new(list, e) || json_object_update(e, it[i].ctx) ||
            json_object_set_new(e, "n", json_integer((json_int_t)i + 1)))
            goto nomem;
    }
    /* each item is rendered on its own, then framed raw ({{{body}}}): escaped once */
    for (int m = 0; m < 2; m++) {
        for (size_t i = 0; i < n; i++) {
            char *b;
            if ((err = render(nx->tpl.item[it[i].kind][m], it[i].ctx, &b)))
                goto out;
            err = set_str(json_array_get(list, i), "body", b) ? TLY_ERR_NOMEM : TLY_OK;
            tly_free(b);
            if (err)
                goto nomem;
        }
        if ((err = render(nx->tpl.frame[m], fctx, &body[m])))
            goto out;
    }
    err = mime_message(nx, a, subject, body[0], body[1], msgid, out, outlen);
    goto out;
nomem:
    err = tly_error(TLY_ERR_NOMEM, "out of memory");
out:
    json_decref(sctx);
    json_decref(fctx);
    json_decref(list);
    tly_free(subject);
    tly_free(body[0]);
    tly_free(body[1]);
    return err;
}

/* ------------------------------------------------------------------------
 * The settings, checked before a command commits anything
 * ---------------------------------------------------------------------- */

/*
 * Samples of every kind of item, each with all its optional values and
 * with none (the details reconcile writes: thresholds.c, enforce.c,
 * simulate.c).  A {{name}} that resolves to nothing is found only when a
 * template meets it (mustache.h), so a misspelt name would otherwise stop
 * the notify stage after the night's bundles were committed.
 */
static const struct sample {
    enum kind kind;
    const char *pool;
    int threshold;
    const char *detail;
} samples[] = {
    { K_THRESHOLD, "credits", 50,
      "{\"used\":\"37.500000\",\"total\":\"75.000000\",\"pct\":\"50.00\",\"unit\":\"credits\"}" },
    { K_THRESHOLD, "runs", 90, "{\"used\":\"9000\",\"total\":\"10000\",\"pct\":\"90.00\",\"unit\":\"runs\"}" },
    { K_NEGATIVE, "credits", 0,
      "{\"balance\":\"-0.000063\",\"negative_limit\":\"40.000000\",\"deployments\":[{\"category\":"
      "\"model\",\"resource_id\":\"llama\",\"deployment_id\":\"llama-eu\",\"name\":\"Llama\"},"
      "{\"category\":\"script\",\"resource_id\":\"etl\",\"deployment_id\":\"etl\"}]}" },
    { K_NEGATIVE, "credits", 0, "{\"balance\":\"-1.000000\",\"negative_limit\":\"0.000000\",\"deployments\":[]}" },
    { K_STOPPED, "credits", 0,
      "{\"stop_at\":\"2026-10-28T19:06:41Z\",\"message\":\"" STOP_MESSAGE "\",\"deployments\":"
      "[{\"category\":\"finetune\",\"resource_id\":\"llama\",\"deployment_id\":\"ft-1\"},"
      "{\"category\":\"guardrail\",\"resource_id\":\"pii\",\"deployment_id\":\"pii\"}]}" },
    { K_STOPPED, "credits", 0, "{\"stop_at\":\"2026-10-28T19:06:41Z\",\"deployments\":[]}" },
    { K_DEPLOYED, NULL, 0, "{\"resource_id\":\"etl\",\"deployment_id\":\"etl-2\",\"name\":\"ETL\","
                           "\"endpoint\":\"https://scripts.example/etl\"}" },
    { K_DEPLOYED, NULL, 0, "{\"resource_id\":\"etl\",\"deployment_id\":\"etl\"}" },
    { K_UNDEPLOYED, NULL, 0, "{\"resource_id\":\"etl\",\"deployment_id\":\"etl\"}" },
};
#define NSAMPLES (sizeof samples / sizeof samples[0])

/* The digest of samples [from, from + n), rendered and thrown away. */
static int rehearse_one(struct notify *nx, const struct account *a, struct item *it, size_t from,
                        size_t n)
{
    char *msg;
    size_t len;
    int err = build_digest(nx, a, it + from, n, "<rehearsal@tally.invalid>", &msg, &len);

    if (!err)
        tly_free(msg);
    return err;
}

/*
 * Every template rendered as real digests would render it: each sample
 * alone (the subject of each kind, no others), two (others_one) and all
 * together (many).
 */
static int rehearse(struct notify *nx)
{
    struct account a = { "sample-account", "Sample account", "admin@example.com", &editions[0] };
    struct item it[NSAMPLES];
    size_t n;
    int err = TLY_OK;

    memset(it, 0, sizeof it);
    for (n = 0; n < NSAMPLES && !err; n++) {
        it[n] = (struct item){ .id = (int64_t)n + 1, .ts = nx->as_of, .kind = samples[n].kind,
                               .threshold = samples[n].threshold };
        err = item_ctx(&a, &it[n], samples[n].pool, samples[n].detail);
    }
    for (size_t i = 0; i < NSAMPLES && !err; i++)
        err = rehearse_one(nx, &a, it, i, 1);
    if (!err && !(err = rehearse_one(nx, &a, it, 0, 2)))
        err = rehearse_one(nx, &a, it, 0, NSAMPLES);
    items_release(it, n);
    return err;
}

int tly_notify_check(const struct tly_settings *s)
{
    struct notify nx;
    int err;

    memset(&nx, 0, sizeof nx);
    nx.s = s;
    nx.as_of = 1793232000;              /* 2026-10-29T00:00:00Z, any instant will do */
    g_mime_init();
    if (!(err = sender_parse(&nx)) && !(err = templates_load(&nx.tpl, s)))
        err = rehearse(&nx);
    if (nx.from)
        g_object_unref(nx.from);
    templates_free(&nx.tpl);
    return err;
}

/* ------------------------------------------------------------------------
 * Stage 1: create and store (one transaction)
 * ---------------------------------------------------------------------- */

static char *col_dup(sqlite3_stmt *st, int i)
{
    const unsigned char *s = sqlite3_column_text(st, i);
    return tly_strdup(s ? (const char *)s : "");
}

/*
 * Loads the account row of 'id' into *a.  Returns TLY_OK with a->id NULL
 * when the account has no row (its items wait for it), TLY_ERR_INPUT after
 * reporting a row the guards refuse.
 */
static int account_load(struct notify *nx, sqlite3_stmt *st, const char *id, struct account *a)
{
    const char *edition;
    char shown[64];
    int rc, err = TLY_OK;

    memset(a, 0, sizeof *a);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        sqlite3_reset(st);
        tly_warn("account '%s' has items but no accounts row: its items wait",
                 printable(shown, sizeof shown, id));
        return TLY_OK;
    }
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        return tly_ledger_error(nx->l, "reading accounts");
    }
    if (!(a->id = tly_strdup(id)) || !(a->name = col_dup(st, 0)) || !(a->email = col_dup(st, 2))) {
        err = tly_error(TLY_ERR_NOMEM, "out of memory");
        goto out;
    }
    edition = (const char *)sqlite3_column_text(st, 1);
    for (size_t i = 0; edition && i < sizeof editions / sizeof editions[0]; i++)
        if (!strcmp(editions[i].id, edition))
            a->ed = &editions[i];
    /* second guards (ingest quarantines these first); never let them into a header or a path */
    if (!tly_digest_valid_account_id(id))
        err = tly_error(TLY_ERR_INPUT, "account id '%s' is not valid: no digest",
                        printable(shown, sizeof shown, id));
    else if (!a->ed)
        err = tly_error(TLY_ERR_INPUT, "account '%s': unknown edition: no digest", id);
    else if (!tly_digest_valid_address(a->email))
        err = tly_error(TLY_ERR_INPUT, "account '%s': admin_email is not a valid address: "
                        "no digest, its items wait", id);
out:
    sqlite3_reset(st);
    if (err)
        account_release(a);
    return err;
}

static int items_load(struct notify *nx, sqlite3_stmt *st, const struct account *a,
                      struct item **out, size_t *nout)
{
    struct item *it = NULL;
    size_t n = 0, cap = 0;
    int rc, err = TLY_OK;

    sqlite3_bind_text(st, 1, a->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, nx->as_of);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *kind = (const char *)sqlite3_column_text(st, 1);
        const char *pool = (const char *)sqlite3_column_text(st, 2);
        const char *detail = (const char *)sqlite3_column_text(st, 5);
        struct item *x;
        int k;

        if (tly_grow(&it, &cap, n + 1, sizeof *it)) {
            err = tly_error(TLY_ERR_NOMEM, "out of memory");
            break;
        }
        x = &it[n];
        memset(x, 0, sizeof *x);
        x->id = sqlite3_column_int64(st, 0);
        x->threshold = sqlite3_column_int(st, 3);
        x->ts = sqlite3_column_int64(st, 4);
        for (k = 0; k < NKINDS && !(kind && !strcmp(kind, kinds[k].name)); k++)
            ;
        if (k == NKINDS) {
            err = tly_error(TLY_ERR_INPUT, "account '%s': item %lld: unknown item kind: "
                            "no digest, its items wait", a->id, (long long)x->id);
            break;
        }
        x->kind = (enum kind)k;
        n++;
        if ((err = item_ctx(a, x, pool, detail ? detail : "")))
            break;
    }
    if (!err && rc != SQLITE_DONE)
        err = tly_ledger_error(nx->l, "reading items");
    sqlite3_reset(st);
    if (err) {
        items_free(it, n);
        return err;
    }
    *out = it;
    *nout = n;
    return TLY_OK;
}

static int store_digest(struct notify *nx, sqlite3_stmt *ins, sqlite3_stmt *take,
                        const struct account *a, const struct item *it, size_t n,
                        const char *msgid, const char *msg, size_t msglen)
{
    int64_t digest_id;
    int err;

    sqlite3_bind_text(ins, 1, a->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(ins, 2, nx->as_of);
    sqlite3_bind_text(ins, 3, msgid, -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 4, a->email, -1, SQLITE_STATIC);
    /* the one bind here that can fail: a message past SQLite's length limit */
    if (msglen > INT_MAX || sqlite3_bind_blob(ins, 5, msg, (int)msglen, SQLITE_STATIC) != SQLITE_OK) {
        sqlite3_reset(ins);
        return tly_error(TLY_ERR_OUTPUT, "digest for '%s': %zu bytes, too large to store", a->id, msglen);
    }
    sqlite3_bind_int(ins, 6, nx->handing_off ? HANDOFF_WAITING : HANDOFF_OUTBOX_ONLY);
    if ((err = tly_ledger_step_done(nx->l, ins)))
        return err;
    digest_id = sqlite3_last_insert_rowid(nx->l->db);
    for (size_t i = 0; i < n; i++) {
        sqlite3_bind_int64(take, 1, digest_id);
        sqlite3_bind_int64(take, 2, it[i].id);
        if ((err = tly_ledger_step_done(nx->l, take)))
            return err;
        /* an item belongs to exactly one digest, ever (§5): never re-taken */
        if (sqlite3_changes(nx->l->db) != 1)
            return tly_error(TLY_ERR_LEDGER, "account '%s': item %lld was taken twice", a->id,
                             (long long)it[i].id);
    }
    return TLY_OK;
}

static int create_one(struct notify *nx, sqlite3_stmt *acc, sqlite3_stmt *sel, sqlite3_stmt *ins,
                      sqlite3_stmt *take, const char *id)
{
    struct account a;
    struct item *it = NULL;
    size_t n = 0, msglen = 0;
    char msgid[512], *msg = NULL;
    int err;

    if ((err = account_load(nx, acc, id, &a)) || !a.id)
        goto refused;
    if ((err = items_load(nx, sel, &a, &it, &n)))
        goto refused;
    if (n == 0)
        goto out;
    if (!nx->tpl_loaded) {
        if ((err = templates_load(&nx->tpl, nx->s)))
            goto out;
        nx->tpl_loaded = 1;
    }
    message_id(msgid, sizeof msgid, a.id, nx->as_of, nx->domain);
    if ((err = build_digest(nx, &a, it, n, msgid, &msg, &msglen)))
        goto out;
    /* stored with its angle brackets: that is the header's and the CSV's value */
    memmove(msgid + 1, msgid, strlen(msgid) + 1);
    msgid[0] = '<';
    strcat(msgid, ">");
    if ((err = store_digest(nx, ins, take, &a, it, n, msgid, msg, msglen)))
        goto out;
    nx->st->digests_created++;
    goto out;
refused:
    /* a refused account is skipped, not fatal: the others still get theirs */
    if (err == TLY_ERR_INPUT) {
        nx->st->skipped++;
        err = TLY_OK;
    }
out:
    tly_free(msg);
    items_free(it, n);
    account_release(&a);
    return err;
}

static int create_digests(struct notify *nx)
{
    sqlite3_stmt *who = NULL, *acc = NULL, *sel = NULL, *ins = NULL, *take = NULL;
    int64_t last = 0;
    int found = 0, rc, err;

    if ((err = tly_ledger_begin(nx->l)))
        return err;
    if ((err = tly_ledger_get_int(nx->l, STATE_NOTIFY_AS_OF, &last, &found)))
        goto fail;
    /*
     * spec §10 "One digest per account and as-of": only an as-of later than
     * every earlier notify creates digests; a re-run shows the same ones.
     */
    if (found && nx->as_of <= last) {
        tly_ledger_rollback(nx->l);
        return TLY_OK;
    }
    if ((err = tly_ledger_prepare(nx->l,
            "SELECT DISTINCT account_id FROM items WHERE digest_id IS NULL AND ts <= ?1"
            " AND NOT EXISTS (SELECT 1 FROM digests d WHERE d.account_id = items.account_id"
            "                 AND d.as_of = ?1)"
            " ORDER BY account_id", &who)) ||
        (err = tly_ledger_prepare(nx->l,
            "SELECT name, edition, admin_email FROM accounts WHERE account_id = ?", &acc)) ||
        (err = tly_ledger_prepare(nx->l,
            "SELECT id, item, pool, threshold, ts, detail FROM items"
            " WHERE account_id = ? AND digest_id IS NULL AND ts <= ? ORDER BY ts, id", &sel)) ||
        (err = tly_ledger_prepare(nx->l,
            "INSERT INTO digests(account_id, as_of, message_id, recipient, message, handed_off)"
            " VALUES(?, ?, ?, ?, ?, ?)", &ins)) ||
        (err = tly_ledger_prepare(nx->l,
            "UPDATE items SET digest_id = ? WHERE id = ? AND digest_id IS NULL", &take)))
        goto fail;
    sqlite3_bind_int64(who, 1, nx->as_of);
    while ((rc = sqlite3_step(who)) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(who, 0);
        if ((err = create_one(nx, acc, sel, ins, take, id ? id : "")))
            goto fail;
    }
    if (rc != SQLITE_DONE) {
        err = tly_ledger_error(nx->l, "reading items");
        goto fail;
    }
    err = tly_ledger_set_int(nx->l, STATE_NOTIFY_AS_OF, nx->as_of);
fail:
    /* no statement may be in progress at COMMIT or ROLLBACK */
    sqlite3_finalize(who);
    sqlite3_finalize(acc);
    sqlite3_finalize(sel);
    sqlite3_finalize(ins);
    sqlite3_finalize(take);
    if (!err)
        err = tly_ledger_commit(nx->l);
    if (err) {
        tly_ledger_rollback(nx->l);
        nx->st->digests_created = 0;
    }
    return err;
}

/* ------------------------------------------------------------------------
 * Stage 2: outbox files and notifications.csv, from the stored bytes
 * ---------------------------------------------------------------------- */

/* Writes 'dir'/'name' through a temporary name in 'dir' and a rename. */
static int write_file(const char *dir, const char *name, const void *data, size_t n)
{
    char path[PATH_CAP], tmp[PATH_CAP];
    const char *p = data;
    int fd, e;

    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path ||
        snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name) >= (int)sizeof tmp)
        return tly_error(TLY_ERR_OUTPUT, "'%s/%s': path too long", dir, name);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return tly_error(TLY_ERR_OUTPUT, "cannot create '%s': %s", tmp, strerror(errno));
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            goto fail;
        p += w;
        n -= (size_t)w;
    }
    if (close(fd) != 0) {
        fd = -1;
        goto fail;
    }
    if (rename(tmp, path) != 0) {
        e = errno;
        unlink(tmp);
        return tly_error(TLY_ERR_OUTPUT, "cannot rename '%s' to '%s': %s", tmp, path, strerror(e));
    }
    return TLY_OK;
fail:
    e = errno;
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return tly_error(TLY_ERR_OUTPUT, "cannot write '%s': %s", tmp, strerror(e));
}

/* The digests an outbox of ?1 shows: its own and its backlog (digest.h). */
#define SHOWN_AT_AS_OF "(d.as_of = ?1 OR (d.as_of < ?1 AND (d.shown_as_of IS NULL OR d.shown_as_of = ?1)))"

static int write_eml_files(struct notify *nx, const char *dir)
{
    sqlite3_stmt *st;
    int rc, err;

    if ((err = tly_ledger_prepare(nx->l, "SELECT d.account_id, d.message, d.as_of FROM digests d"
                                         " WHERE " SHOWN_AT_AS_OF " ORDER BY d.account_id, d.as_of", &st)))
        return err;
    sqlite3_bind_int64(st, 1, nx->as_of);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(st, 0);
        int64_t as_of = sqlite3_column_int64(st, 2);
        char name[160], when[COMPACT_TS_LEN];
        if (!id || !tly_digest_valid_account_id(id)) {     /* created only for valid ids */
            err = tly_error(TLY_ERR_LEDGER, "digest with an invalid account id in the ledger");
            break;
        }
        if (as_of == nx->as_of) {
            snprintf(name, sizeof name, "%s.eml", id);
        } else {
            compact_ts(when, as_of);
            snprintf(name, sizeof name, "%s+%s.eml", id, when);
        }
        if ((err = write_file(dir, name, sqlite3_column_blob(st, 1),
                              (size_t)sqlite3_column_bytes(st, 1))))
            break;
        nx->st->digests_shown++;
    }
    if (!err && rc != SQLITE_DONE)
        err = tly_ledger_error(nx->l, "reading digests");
    sqlite3_finalize(st);
    return err;
}

static const char *const csv_header[] = {
    "account_id", "item", "pool", "threshold", "ts", "recipient", "digest", NULL,
};

/*
 * outputs.md notifications.csv: the items of this as-of's digests, rows
 * sorted by their first columns (the CSV convention), then oldest first.
 */
static int write_csv(struct notify *nx, const char *path)
{
    struct csvout *w = NULL;
    sqlite3_stmt *st;
    int rc, err;

    if ((err = tly_ledger_prepare(nx->l,
            "SELECT d.account_id, i.item, i.pool, i.threshold, i.ts, d.recipient, d.message_id"
            " FROM digests d JOIN items i ON i.digest_id = d.id WHERE " SHOWN_AT_AS_OF
            " ORDER BY d.account_id, i.item, i.pool, i.threshold, i.ts, i.id", &st)))
        return err;
    if ((err = csvout_open(path, csv_header, &w))) {
        sqlite3_finalize(st);
        return err;
    }
    sqlite3_bind_int64(st, 1, nx->as_of);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        csvout_text(w, (const char *)sqlite3_column_text(st, 0));
        csvout_text(w, (const char *)sqlite3_column_text(st, 1));
        csvout_text(w, (const char *)sqlite3_column_text(st, 2));
        if (sqlite3_column_type(st, 3) == SQLITE_NULL)
            csvout_empty(w);
        else
            csvout_int(w, sqlite3_column_int64(st, 3));
        csvout_ts(w, sqlite3_column_int64(st, 4));
        csvout_text(w, (const char *)sqlite3_column_text(st, 5));
        csvout_text(w, (const char *)sqlite3_column_text(st, 6));
        csvout_end_row(w);
        nx->st->items++;
    }
    if (rc != SQLITE_DONE) {
        err = tly_ledger_error(nx->l, "reading digest items");
        csvout_abort(w);
    } else {
        err = csvout_close(w);
    }
    sqlite3_finalize(st);
    return err;
}

/* ------------------------------------------------------------------------
 * Stage 3: hand-off to sendmail
 * ---------------------------------------------------------------------- */

/* environ without TALLY_ACCOUNT_ID/TALLY_MESSAGE_ID, plus the two given; built before fork. */
static char **child_env(char *acc, char *mid)
{
    size_t n = 0, j = 0;
    char **env;

    while (environ && environ[n])
        n++;
    if (!(env = tly_calloc(n + 3, sizeof *env)))
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "TALLY_ACCOUNT_ID=", 17) &&
            strncmp(environ[i], "TALLY_MESSAGE_ID=", 17))
            env[j++] = environ[i];
    env[j++] = acc;
    env[j++] = mid;
    env[j] = NULL;
    return env;
}

/*
 * A hand-off has a deadline (notify.sendmail_timeout, 0: none): a mail
 * command that hangs (an MTA waiting on a dead relay) would otherwise hold
 * the run, and with it the ledger's lock, so that every later night exits
 * 75 until someone notices.  Past the deadline the command's process group
 * is killed, the digest stays waiting, and the run hands off nothing more:
 * a command that hung once is likely to hang for every digest.
 */
static int64_t monotonic_ns(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Milliseconds left before 'deadline' (0: never), for poll: -1 for none. */
static int ms_left(int64_t deadline)
{
    int64_t left;

    if (!deadline)
        return -1;
    left = (deadline - monotonic_ns()) / 1000000;
    return left <= 0 ? 0 : left > INT_MAX ? INT_MAX : (int)left;
}

/* Writes all of 'msg' into the (non-blocking) pipe: 0, -1 failed, -2 deadline passed. */
static int write_by(int fd, const char *msg, size_t n, int64_t deadline, char *why, size_t whycap)
{
    while (n > 0) {
        struct pollfd p = { .fd = fd, .events = POLLOUT };
        int ms = ms_left(deadline), r;
        ssize_t w;

        if (ms == 0)
            return -2;
        if ((r = poll(&p, 1, ms)) <= 0) {
            if (r < 0 && errno != EINTR) {
                snprintf(why, whycap, "poll: %s", strerror(errno));
                return -1;
            }
            continue;
        }
        w = write(fd, msg, n);
        if (w < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (w <= 0) {
            snprintf(why, whycap, "writing to it: %s", strerror(errno));
            return -1;
        }
        msg += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Waits for the command's exit: 0, -1 failed, -2 deadline passed. */
static int wait_by(pid_t pid, int *status, int64_t deadline, char *why, size_t whycap)
{
    const struct timespec tick = { 0, 10 * 1000000 };

    for (;;) {
        pid_t r = waitpid(pid, status, deadline ? WNOHANG : 0);

        if (r == pid)
            return 0;
        if (r < 0 && errno != EINTR) {
            snprintf(why, whycap, "waitpid: %s", strerror(errno));
            return -1;
        }
        if (r == 0 && ms_left(deadline) == 0)
            return -2;
        if (r == 0)
            nanosleep(&tick, NULL);
    }
}

/* The command's group killed, the command reaped. */
static void kill_command(pid_t pid)
{
    int status;

    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
}

/*
 * Pipes 'msg' to `/bin/sh -c 'cmd'`, in a process group of its own.
 * Success is: every byte written and the command exiting 0, within
 * 'timeout_s' seconds (0: no limit).  Its stdout goes to our stderr
 * (stdout may be a report).  Returns 0 on success, -1 with *why set, or -2
 * (why set too) when the command was killed at the deadline.
 */
static int pipe_to(const char *cmd, int64_t timeout_s, const char *account, const char *msgid,
                   const char *msg, size_t n, char *why, size_t whycap)
{
    char acc[200], mid[600];
    struct sigaction ign, old;
    int fds[2], status = 0, rc;
    int64_t deadline = timeout_s > 0 ? monotonic_ns() + timeout_s * 1000000000 : 0;
    char **env;
    pid_t pid;

    snprintf(acc, sizeof acc, "TALLY_ACCOUNT_ID=%s", account);
    snprintf(mid, sizeof mid, "TALLY_MESSAGE_ID=%s", msgid);
    if (!(env = child_env(acc, mid))) {
        snprintf(why, whycap, "out of memory");
        return -1;
    }
    if (pipe2(fds, O_CLOEXEC) != 0) {
        snprintf(why, whycap, "pipe: %s", strerror(errno));
        tly_free(env);
        return -1;
    }
    /* a command that exits without reading must not kill us with SIGPIPE */
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    sigaction(SIGPIPE, &ign, &old);
    pid = fork();
    if (pid == 0) {
        char *argv[] = { "sh", "-c", (char *)cmd, NULL };
        signal(SIGPIPE, SIG_DFL);           /* SIG_IGN would survive exec */
        if (setpgid(0, 0) < 0 || dup2(fds[0], 0) < 0 || dup2(2, 1) < 0)
            _exit(126);
        execve("/bin/sh", argv, env);
        _exit(127);
    }
    close(fds[0]);
    if (pid < 0) {
        snprintf(why, whycap, "fork: %s", strerror(errno));
        close(fds[1]);
        sigaction(SIGPIPE, &old, NULL);
        tly_free(env);
        return -1;
    }
    setpgid(pid, pid);      /* as the child does: no race with the kill below */
    /* the write end alone: the command's stdin stays blocking */
    rc = fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK) < 0 ? -1 : 0;
    if (rc < 0)
        snprintf(why, whycap, "fcntl: %s", strerror(errno));
    else
        rc = write_by(fds[1], msg, n, deadline, why, whycap);
    close(fds[1]);
    if (rc != -2) {     /* a failed write keeps its reason, unless the command then hangs */
        int waited = wait_by(pid, &status, deadline, why, whycap);
        if (rc == 0 || waited == -2)
            rc = waited;
    }
    if (rc == -2) {
        kill_command(pid);
        snprintf(why, whycap, "no answer within %lld s (notify.sendmail_timeout): killed",
                 (long long)timeout_s);
    }
    sigaction(SIGPIPE, &old, NULL);
    tly_free(env);
    if (rc == 0 && WIFEXITED(status) && WEXITSTATUS(status) != 0) {
        snprintf(why, whycap, "exit status %d", WEXITSTATUS(status));
        rc = -1;
    } else if (rc == 0 && WIFSIGNALED(status)) {
        snprintf(why, whycap, "killed by signal %d", WTERMSIG(status));
        rc = -1;
    }
    return rc;
}

static int hand_off(struct notify *nx, const char *cmd)
{
    sqlite3_stmt *ids = NULL, *get = NULL, *mark = NULL;
    int64_t *todo = NULL;
    size_t n = 0, cap = 0;
    int rc, err;

    if ((err = tly_ledger_prepare(nx->l, "SELECT id FROM digests WHERE handed_off = ?"
                                         " ORDER BY as_of, account_id", &ids)) ||
        (err = tly_ledger_prepare(nx->l, "SELECT account_id, message_id, message FROM digests"
                                         " WHERE id = ? AND handed_off = ?", &get)) ||
        (err = tly_ledger_prepare(nx->l, "UPDATE digests SET handed_off = ? WHERE id = ?", &mark)))
        goto out;
    sqlite3_bind_int(ids, 1, HANDOFF_WAITING);
    sqlite3_bind_int(get, 2, HANDOFF_WAITING);
    sqlite3_bind_int(mark, 1, HANDOFF_DONE);
    while ((rc = sqlite3_step(ids)) == SQLITE_ROW) {
        if (tly_grow(&todo, &cap, n + 1, sizeof *todo)) {
            err = tly_error(TLY_ERR_NOMEM, "out of memory");
            goto out;
        }
        todo[n++] = sqlite3_column_int64(ids, 0);
    }
    if (rc != SQLITE_DONE) {
        err = tly_ledger_error(nx->l, "reading digests");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        char why[256] = "";

        sqlite3_bind_int64(get, 1, todo[i]);
        if ((rc = sqlite3_step(get)) != SQLITE_ROW) {
            sqlite3_reset(get);
            if (rc == SQLITE_DONE)
                continue;
            err = tly_ledger_error(nx->l, "reading a digest");
            goto out;
        }
        rc = pipe_to(cmd, nx->s->sendmail_timeout_s, (const char *)sqlite3_column_text(get, 0),
                     (const char *)sqlite3_column_text(get, 1), sqlite3_column_blob(get, 2),
                     (size_t)sqlite3_column_bytes(get, 2), why, sizeof why);
        if (rc < 0)
            tly_error(TLY_ERR_OUTPUT, "hand-off of the digest of account '%s' %s failed: %s;"
                      " it is retried by the next run", sqlite3_column_text(get, 0),
                      sqlite3_column_text(get, 1), why);
        sqlite3_reset(get);
        if (rc == -2 && i + 1 < n)
            tly_error(TLY_ERR_OUTPUT, "%zu more digest%s not handed off after it; the next run"
                      " retries them", n - i - 1, n - i - 1 == 1 ? " is" : "s are");
        if (rc == -2) {
            nx->st->handoff_failed += (long)(n - i);
            break;
        }
        if (rc < 0) {
            nx->st->handoff_failed++;
            continue;
        }
        /* recorded at once, on its own: the next digest's failure cannot undo it */
        sqlite3_bind_int64(mark, 2, todo[i]);
        if ((err = tly_ledger_begin(nx->l)))
            goto out;
        if ((err = tly_ledger_step_done(nx->l, mark)) || (err = tly_ledger_commit(nx->l))) {
            tly_ledger_rollback(nx->l);
            goto out;
        }
        nx->st->handed_off++;
    }
out:
    sqlite3_finalize(ids);
    sqlite3_finalize(get);
    sqlite3_finalize(mark);
    tly_free(todo);
    return err;
}

/* ------------------------------------------------------------------------
 * Public
 * ---------------------------------------------------------------------- */

int tly_notify_shown(struct tly_ledger *l, int64_t as_of)
{
    sqlite3_stmt *st;
    int err;

    if ((err = tly_ledger_prepare(l, "UPDATE digests SET shown_as_of = ?1"
                                     " WHERE shown_as_of IS NULL AND as_of <= ?1", &st)))
        return err;
    sqlite3_bind_int64(st, 1, as_of);
    err = tly_ledger_step_done(l, st);
    sqlite3_finalize(st);
    return err;
}

int tly_notify_run(struct tly_ledger *l, const struct tly_settings *s, int64_t as_of,
                   const char *outbox_dir, const char *csv_path, const char *sendmail_cmd,
                   struct tly_notify_stats *st)
{
    struct notify nx;
    int err;

    memset(st, 0, sizeof *st);
    memset(&nx, 0, sizeof nx);
    nx.l = l;
    nx.s = s;
    nx.as_of = as_of;
    nx.st = st;
    nx.handing_off = sendmail_cmd && sendmail_cmd[0];
    g_mime_init();              /* counted by GMime: a no-op after the first call */

    if ((err = sender_parse(&nx)) || (err = create_digests(&nx)) ||
        (err = write_eml_files(&nx, outbox_dir)) || (err = write_csv(&nx, csv_path)))
        goto out;
    if (nx.handing_off)
        err = hand_off(&nx, sendmail_cmd);
out:
    if (nx.from)
        g_object_unref(nx.from);
    templates_free(&nx.tpl);
    return err;
}
