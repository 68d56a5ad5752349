/*
 * settings.c — defaults, the INI file, command-line overrides.
 */
#include "settings.h"
#include "alloc.h"
#include "error.h"
#include "money.h"

#include <ini.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

enum kind { INT, MONEY, STR };

static const struct setting {
    const char *section, *name;
    enum kind kind;
    size_t offset;
    int64_t max;                /* INT and MONEY: the largest value accepted */
    const char *deflt;
    const char *help;
} table[] = {
#define F(f) offsetof(struct tly_settings, f)
#define ANY INT64_MAX
    { "ingest", "max_entry_bytes", INT, F(max_entry_bytes), ANY, "8589934592", "decompressed bytes per bundle entry" },
    { "ingest", "max_bundle_bytes", INT, F(max_bundle_bytes), ANY, "34359738368", "decompressed bytes per bundle" },
    { "ingest", "max_entries", INT, F(max_entries), ANY, "10000", "entries per bundle" },
    { "ingest", "max_ratio", INT, F(max_ratio), ANY, "200", "decompressed:stored ratio allowed per entry" },
    { "ingest", "ratio_after_bytes", INT, F(ratio_after_bytes), ANY, "67108864", "the ratio is checked once an entry passes this size" },
    { "ingest", "max_field_bytes", INT, F(max_field_bytes), ANY, "65536", "bytes in one CSV field" },
    { "ingest", "max_rows_per_file", INT, F(max_rows_per_file), ANY, "1000000000", "data rows in one CSV file" },
    { "reconcile", "grace_hours", INT, F(grace_hours), TLY_MAX_GRACE_HOURS, "48", "hours after a cycle end before it closes" },
    { "reconcile", "finetune_minimum", MONEY, F(finetune_min_micro), 1000000000 * TLY_MICRO, "25", "credits needed to start fine-tuning" },
    { "report", "scratch_dir", STR, F(scratch_dir), 0, "", "where workbooks are assembled (empty: $TMPDIR, else /dev/shm with 1 GiB free, else beside the reports)" },
    { "notify", "sender", STR, F(sender), 0, "Tally Billing <billing-noreply@tally.invalid>", "From: of digest e-mails" },
    { "notify", "sendmail", STR, F(sendmail), 0, "", "command digests are piped to (empty: none)" },
    { "notify", "sendmail_timeout", INT, F(sendmail_timeout_s), 86400, "300", "seconds one hand-off may take before the command is killed (0: no limit)" },
    { "notify", "templates", STR, F(templates_dir), 0, "", "template directory (empty: built-in search path)" },
    { "ledger", "db", STR, F(db), 0, "tally.db", "the SQLite ledger" },
#undef ANY
#undef F
};
#define NSETTINGS (sizeof table / sizeof table[0])

/* Where each value came from, and the strings we own, by table index. */
static enum tly_setting_source sources[NSETTINGS];
static char *owned[NSETTINGS];

static int set_one(struct tly_settings *s, size_t i, const char *value, enum tly_setting_source src)
{
    const struct setting *t = &table[i];
    char *base = (char *)s + t->offset;
    const char *why = NULL;
    int64_t v;

    switch (t->kind) {
    case INT:
        if (tly_parse_int(value, strlen(value), 0, t->max, &v, &why))
            return tly_error(TLY_ERR_USAGE, "setting '%s.%s': '%s' %s (a whole number, 0 to %lld)",
                             t->section, t->name, value, why, (long long)t->max);
        *(int64_t *)base = v;
        break;
    case MONEY:
        if (tly_parse_micro(value, strlen(value), t->max, &v, &why) || v < 0)
            return tly_error(TLY_ERR_USAGE, "setting '%s.%s': '%s' %s", t->section, t->name, value,
                             why ? why : "is negative");
        *(int64_t *)base = v;
        break;
    case STR: {
        char *copy = NULL;
        if (src != TLY_SRC_DEFAULT) {
            copy = tly_strdup(value);
            if (!copy)
                return tly_error(TLY_ERR_NOMEM, "out of memory");
        }
        tly_free(owned[i]);
        owned[i] = copy;
        *(const char **)base = copy ? copy : value;
        break;
    }
    }
    sources[i] = src;
    return TLY_OK;
}

int tly_settings_set(struct tly_settings *s, const char *section, const char *name,
                     const char *value, enum tly_setting_source src)
{
    for (size_t i = 0; i < NSETTINGS; i++)
        if (!strcmp(table[i].section, section) && !strcmp(table[i].name, name))
            return set_one(s, i, value, src);
    return tly_error(TLY_ERR_USAGE, "unknown setting '%s.%s'", section, name);
}

struct ini_ctx {
    struct tly_settings *s;
    const char *path;
    int err;
};

static int on_ini(void *user, const char *section, const char *name, const char *value)
{
    struct ini_ctx *c = user;
    if (c->err)
        return 0;
    c->err = tly_settings_set(c->s, section, name, value, TLY_SRC_FILE);
    return c->err == TLY_OK;
}

int tly_settings_load(struct tly_settings *s, const char *config_path)
{
    struct ini_ctx c = { s, config_path, TLY_OK };
    int line;

    memset(s, 0, sizeof *s);
    for (size_t i = 0; i < NSETTINGS; i++) {
        int err = set_one(s, i, table[i].deflt, TLY_SRC_DEFAULT);
        if (err)
            return err;
    }
    if (!config_path) {
        if (access(TLY_DEFAULT_CONFIG, F_OK) != 0)
            return TLY_OK;
        c.path = config_path = TLY_DEFAULT_CONFIG;
    }
    s->file = config_path;
    line = ini_parse(config_path, on_ini, &c);
    if (line < 0)
        return tly_error(TLY_ERR_USAGE, "cannot read config '%s'", config_path);
    if (c.err)
        return c.err;
    if (line > 0)
        return tly_error(TLY_ERR_USAGE, "'%s' line %d: not an INI line", config_path, line);
    return TLY_OK;
}

/* The range a setting accepts, as set_one checks it: whoever edits the
 * file should not have to learn it from an error. */
static void print_range(FILE *f, const struct setting *t)
{
    const char *what = t->kind == MONEY ? "credits" : "a whole number";
    char max[TLY_MONEY_LEN];

    if (t->max == INT64_MAX) {
        fprintf(f, "# %s, 0 or more\n", what);
        return;
    }
    if (t->kind == MONEY)
        tly_format_micro(max, t->max);
    else
        snprintf(max, sizeof max, "%lld", (long long)t->max);
    fprintf(f, "# %s, 0 to %s\n", what, max);
}

void tly_settings_print(const struct tly_settings *s, void *file)
{
    static const char *src_name[] = { "default", "config file", "command line" };
    FILE *f = file;
    const char *section = "";

    for (size_t i = 0; i < NSETTINGS; i++) {
        const struct setting *t = &table[i];
        const char *base = (const char *)s + t->offset;
        char money[TLY_MONEY_LEN];

        if (strcmp(section, t->section)) {
            fprintf(f, "%s[%s]\n", i ? "\n" : "", t->section);
            section = t->section;
        }
        fprintf(f, "# %s (%s)\n", t->help, src_name[sources[i]]);
        switch (t->kind) {
        case INT:
            print_range(f, t);
            fprintf(f, "%s = %lld\n", t->name, (long long)*(const int64_t *)base);
            break;
        case MONEY:
            print_range(f, t);
            tly_format_micro(money, *(const int64_t *)base);
            fprintf(f, "%s = %s\n", t->name, money);
            break;
        case STR:
            fprintf(f, "%s = %s\n", t->name, *(const char *const *)base);
            break;
        }
    }
}

void tly_settings_release(struct tly_settings *s)
{
    for (size_t i = 0; i < NSETTINGS; i++) {
        tly_free(owned[i]);
        owned[i] = NULL;
    }
    (void)s;
}
