/* config.h - settings from tern.conf; the table lives in config_table.h */
#ifndef TERN_CONFIG_H
#define TERN_CONFIG_H

#include <stdint.h>
#include <stdio.h>

enum cfg_type { CFG_STR, CFG_INT, CFG_SIZE, CFG_TIME, CFG_BOOL, CFG_LIST };

enum cfg_index {
#define CFG(name, type, def, help) CFG_IDX_##name,
#include "config_table.h"
#undef CFG
    CFG__COUNT
};

struct config {
#define CFG_FIELD_STR char *
#define CFG_FIELD_LIST char *
#define CFG_FIELD_INT long long
#define CFG_FIELD_SIZE long long
#define CFG_FIELD_TIME long long
#define CFG_FIELD_BOOL int
#define CFG(name, type, def, help) CFG_FIELD_##type name;
#include "config_table.h"
#undef CFG
    char *path; /* the file it was read from */
    unsigned char explicit_set[CFG__COUNT]; /* set in the file or with -o */
};

struct cfg_def {
    const char *name;
    enum cfg_type type;
    const char *def;
    const char *help;
};

extern const struct cfg_def cfg_defs[];
extern const size_t cfg_ndefs;

/* config_load - read FILE (may be NULL: defaults only), apply overrides
 * ("name=value", count n), expand $name references, validate.  On error
 * returns NULL with a message "FILE:LINE: ..." in err. */
struct config *config_load(const char *file, char *const *overrides, int n, char *err,
                           size_t errsz);
void config_free(struct config *c);

/* config_print - print settings; nondefault_only: only those set in the
 * file or with -o, like postconf -n */
void config_print(const struct config *c, FILE *fp, int nondefault_only);
/* config_doc - print the Markdown reference generated from the table */
void config_doc(FILE *fp);

/* config_list_next - iterate a LIST value: *p advances; returns length of
 * the next item copied to out (size outsz) or 0 at the end. */
size_t config_list_next(const char **p, char *out, size_t outsz);

/* config_list_contains - case-insensitive membership of item in a LIST value */
int config_list_contains(const char *list, const char *item);

#endif
