/*
 * settings.h — everything configurable, in one place.
 *
 * Precedence: built-in default < INI file (--config FILE, else
 * /etc/tally/tally.conf when it exists; parsed by Debian's libinih) <
 * command-line options.  Each setting remembers where its value came from, so
 * `tally config` can say.  Adding a setting: one field below, one row in
 * settings.c's table, one documented line in scripts/tally.conf.
 */
#ifndef TLY_SETTINGS_H
#define TLY_SETTINGS_H

#include <stdint.h>

#define TLY_DEFAULT_CONFIG "/etc/tally/tally.conf"

/*
 * Ten years.  A close is final, and end + grace is computed in seconds:
 * a grace whose seconds overflow 64 bits would wrap and close cycles out
 * of order, so it is refused as a usage error instead.
 */
#define TLY_MAX_GRACE_HOURS 87600

struct tly_settings {
    /* [ingest] bounds (inputs.md "Bundles") */
    int64_t max_entry_bytes;        /* decompressed bytes per entry */
    int64_t max_bundle_bytes;       /* decompressed bytes per bundle */
    int64_t max_entries;            /* entries per bundle */
    int64_t max_ratio;              /* decompressed:stored, once past ratio_after */
    int64_t ratio_after_bytes;
    int64_t max_field_bytes;        /* one CSV field */
    int64_t max_rows_per_file;
    /* [reconcile] */
    int64_t grace_hours;            /* semantics §8, default 48 */
    int64_t finetune_min_micro;     /* semantics §6, default 25 credits */
    /* [report] */
    const char *scratch_dir;        /* libxlsxwriter's scratch files, "" = chosen (stages.c) */
    /* [notify] */
    const char *sender;             /* From: of digests */
    const char *sendmail;           /* hand-off command, "" = none */
    int64_t sendmail_timeout_s;     /* seconds a hand-off may take, 0 = no limit */
    const char *templates_dir;
    /* [ledger] */
    const char *db;
    /* the INI file read (the --config path or TLY_DEFAULT_CONFIG), NULL for none */
    const char *file;
};

enum tly_setting_source { TLY_SRC_DEFAULT, TLY_SRC_FILE, TLY_SRC_OPTION };

/* Fills defaults, then reads 'config_path' (NULL: the default path if it exists). */
int tly_settings_load(struct tly_settings *s, const char *config_path);

/* Sets one "section.name" from text; used by the INI reader and by options. */
int tly_settings_set(struct tly_settings *s, const char *section, const char *name,
                     const char *value, enum tly_setting_source src);

/* Prints every setting as INI with its source as a comment (tally config). */
void tly_settings_print(const struct tly_settings *s, void *file);

/* Frees strings the INI file provided. */
void tly_settings_release(struct tly_settings *s);

#endif
