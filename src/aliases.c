/* aliases.c - /etc/aliases-format alias tables, parsed into an in-memory hash table
 *
 * Format (aliases(5)): "name: target, target, ...".  A line starting with
 * white space continues the previous entry, '#' lines are comments (also
 * between an entry and its continuations), blank lines are skipped.  A
 * target is a user or user@domain, /path/file, "|command" (or unquoted
 * |command), :include:/path, or any of these in double quotes when it
 * contains commas or white space.  The first definition of a name wins.
 */
#include "aliases.h"
#include "buf.h"
#include "config.h"
#include "log.h"
#include "xmalloc.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define ALIAS_ENTRY_MAX (1024 * 1024) /* longest logical entry, continuations included */

struct alias_db {
    struct alias_entry *entries;
    size_t n, cap;
    size_t *slots; /* open addressing: index + 1 into entries, 0 = empty */
    size_t nslots; /* power of two */
};

/* name_hash - FNV-1a over the lower-cased name */
static uint64_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h ^= (unsigned char)tolower((unsigned char)*s);
        h *= 1099511628211ULL;
    }
    return h;
}

/* db_find_slot - slot index holding name, or the empty slot where it would go */
static size_t db_find_slot(const struct alias_db *db, const char *name)
{
    size_t mask = db->nslots - 1, i = (size_t)name_hash(name) & mask;
    while (db->slots[i] != 0 && strcasecmp(db->entries[db->slots[i] - 1].name, name) != 0)
        i = (i + 1) & mask;
    return i;
}

/* db_rehash - grow the slot table to keep the load factor under 1/2 */
static void db_rehash(struct alias_db *db)
{
    free(db->slots);
    db->nslots = db->nslots ? db->nslots * 2 : 64;
    db->slots = xcalloc(db->nslots, sizeof(*db->slots));
    for (size_t k = 0; k < db->n; k++)
        db->slots[db_find_slot(db, db->entries[k].name)] = k + 1;
}

/* entry_free - release the strings and targets of one entry */
static void entry_free(struct alias_entry *e)
{
    free(e->name);
    free(e->source);
    alias_targets_free(e->targets, e->ntargets);
}

/* db_add - insert e (taking ownership); a duplicate name is dropped with a warning */
static void db_add(struct alias_db *db, struct alias_entry *e)
{
    if (db->nslots == 0 || (db->n + 1) * 2 > db->nslots)
        db_rehash(db);
    size_t i = db_find_slot(db, e->name);
    if (db->slots[i] != 0) {
        log_warnx("%s: duplicate alias \"%s\" ignored (first defined at %s)", e->source, e->name,
                  db->entries[db->slots[i] - 1].source);
        entry_free(e);
        return;
    }
    if (db->n == db->cap) {
        db->cap = db->cap ? db->cap * 2 : 32;
        db->entries = xrealloc(db->entries, db->cap * sizeof(*db->entries));
    }
    db->entries[db->n] = *e;
    db->slots[i] = ++db->n;
}

/* target_push - append one target to a growing array */
static void target_push(struct alias_target **t, size_t *n, size_t *cap,
                        enum alias_target_type type, char *value)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 4;
        *t = xrealloc(*t, *cap * sizeof(**t));
    }
    (*t)[*n].type = type;
    (*t)[*n].value = value;
    (*n)++;
}

/* unquote - copy a token that is entirely "..." without the quotes and backslash escapes */
static char *unquote(const char *s, size_t len)
{
    char *out = xmalloc(len + 1), *o = out;
    for (size_t i = 1; i + 1 < len; i++) {
        if (s[i] == '\\' && i + 2 < len)
            i++;
        *o++ = s[i];
    }
    *o = '\0';
    return out;
}

/* fully_quoted - token (trimmed) is one double-quoted string */
static int fully_quoted(const char *s, size_t len)
{
    if (len < 2 || s[0] != '"' || s[len - 1] != '"')
        return 0;
    for (size_t i = 1; i + 1 < len; i++) {
        if (s[i] == '\\')
            i++;
        else if (s[i] == '"')
            return 0;
    }
    return 1;
}

/* has_space_or_ctl - any white space or control byte in s */
static int has_space_or_ctl(const char *s)
{
    for (; *s; s++)
        if (isspace((unsigned char)*s) || iscntrl((unsigned char)*s))
            return 1;
    return 0;
}

/* space_outside_quotes - white space or control byte outside "..." parts */
static int space_outside_quotes(const char *s)
{
    int inq = 0;
    for (; *s; s++) {
        if (inq && *s == '\\' && s[1])
            s++;
        else if (*s == '"')
            inq = !inq;
        else if (!inq && (isspace((unsigned char)*s) || iscntrl((unsigned char)*s)))
            return 1;
    }
    return 0;
}

/* classify - turn one token into a target; -1 with err on a bad token */
static int classify(const char *tok, size_t len, struct alias_target **t, size_t *n, size_t *cap,
                    char *err, size_t errsz)
{
    int quoted = fully_quoted(tok, len);
    char *v = quoted ? unquote(tok, len) : xstrndup(tok, len);
    enum alias_target_type type = ALIAS_ADDR;
    char *val = v;
    const char *what = "address";

    for (const char *p = v; *p; p++)
        if (iscntrl((unsigned char)*p) && *p != '\t')
            goto bad_ctl;
    if (v[0] == '|') {
        type = ALIAS_PIPE, what = "command";
        for (val = v + 1; *val == ' ' || *val == '\t'; val++)
            ;
    } else if (v[0] == '/') {
        type = ALIAS_FILE, what = "file name";
    } else if (strncasecmp(v, ":include:", 9) == 0) {
        type = ALIAS_INCLUDE, what = "include file name";
        for (val = v + 9; *val == ' ' || *val == '\t'; val++)
            ;
        if (*val != '/' && *val != '\0') {
            snprintf(err, errsz, "include file name must be absolute: \"%s\"", val);
            free(v);
            return -1;
        }
    }
    if (*val == '\0') {
        snprintf(err, errsz, "empty %s in \"%.*s\"", what, (int)len, tok);
        free(v);
        return -1;
    }
    if (!quoted && type != ALIAS_PIPE && space_outside_quotes(val)) {
        snprintf(err, errsz, "white space in %s \"%s\" (use double quotes)", what, val);
        free(v);
        return -1;
    }
    target_push(t, n, cap, type, xstrdup(val));
    free(v);
    return 0;
bad_ctl:
    snprintf(err, errsz, "control character in target");
    free(v);
    return -1;
}

/* alias_parse_targets - split a right-hand side into targets (commas outside quotes) */
long alias_parse_targets(const char *rhs, struct alias_target **out, char *err, size_t errsz)
{
    struct alias_target *t = NULL;
    size_t n = 0, cap = 0;
    const char *p = rhs;

    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n')
            p++;
        const char *start = p;
        int inq = 0;
        for (; *p && (inq || *p != ','); p++) {
            if (inq && *p == '\\' && p[1])
                p++;
            else if (*p == '"')
                inq = !inq;
        }
        if (inq) {
            snprintf(err, errsz, "unterminated double quote in \"%s\"", start);
            alias_targets_free(t, n);
            return -1;
        }
        const char *end = p;
        while (end > start && isspace((unsigned char)end[-1]))
            end--;
        if (end > start && classify(start, (size_t)(end - start), &t, &n, &cap, err, errsz) < 0) {
            alias_targets_free(t, n);
            return -1;
        }
        if (*p == '\0')
            break;
        p++; /* the comma */
    }
    *out = t;
    return (long)n;
}

/* alias_targets_free - free an array from alias_parse_targets */
void alias_targets_free(struct alias_target *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(t[i].value);
    free(t);
}

/* parse_entry - "name: rhs" into an entry; -1 with err (no file:line prefix) */
static int parse_entry(const char *line, struct alias_entry *e, char *err, size_t errsz)
{
    const char *colon = strchr(line, ':');
    if (colon == NULL) {
        snprintf(err, errsz, "missing ':' after the alias name");
        return -1;
    }
    const char *s = line, *end = colon;
    while (end > s && isspace((unsigned char)end[-1]))
        end--;
    if (end == s) {
        snprintf(err, errsz, "empty alias name");
        return -1;
    }
    char *name = xstrndup(s, (size_t)(end - s));
    if (has_space_or_ctl(name)) {
        snprintf(err, errsz, "white space in alias name \"%s\"", name);
        free(name);
        return -1;
    }
    for (char *q = name; *q; q++)
        *q = (char)tolower((unsigned char)*q);
    long n = alias_parse_targets(colon + 1, &e->targets, err, errsz);
    if (n == 0)
        snprintf(err, errsz, "no targets for alias \"%s\"", name);
    if (n <= 0) {
        free(name);
        return -1;
    }
    e->name = name;
    e->ntargets = (size_t)n;
    return 0;
}

/* load_state - one file being read */
struct load_state {
    const char *file;
    const struct stat *st;
    struct buf logical;
    int start;  /* line number where the logical entry starts */
};

/* flush_entry - parse the pending logical entry and add it to db */
static int flush_entry(struct alias_db *db, struct load_state *ls, char *err, size_t errsz)
{
    if (ls->logical.len == 0)
        return 0;
    struct alias_entry e;
    char sub[512];
    memset(&e, 0, sizeof(e));
    if (parse_entry(ls->logical.data, &e, sub, sizeof(sub)) < 0) {
        snprintf(err, errsz, "%s:%d: %s", ls->file, ls->start, sub);
        return -1;
    }
    e.owner = ls->st->st_uid;
    e.group = ls->st->st_gid;
    e.source = xasprintf("%s:%d", ls->file, ls->start);
    db_add(db, &e);
    buf_reset(&ls->logical);
    return 0;
}

/* load_line - handle one physical line (newline removed) */
static int load_line(struct alias_db *db, struct load_state *ls, char *line, int lineno,
                     char *err, size_t errsz)
{
    char *t = line;
    while (isspace((unsigned char)*t))
        t++;
    if (*t == '\0' || *t == '#')
        return 0;
    if (t != line) { /* continuation */
        if (ls->logical.len == 0) {
            snprintf(err, errsz, "%s:%d: continuation line without an alias", ls->file, lineno);
            return -1;
        }
        if (ls->logical.len + strlen(t) > ALIAS_ENTRY_MAX) {
            snprintf(err, errsz, "%s:%d: alias entry too long", ls->file, ls->start);
            return -1;
        }
        buf_putc(&ls->logical, ' ');
        buf_puts(&ls->logical, t);
        return 0;
    }
    if (flush_entry(db, ls, err, errsz) < 0)
        return -1;
    ls->start = lineno;
    buf_puts(&ls->logical, line);
    return 0;
}

/* load_file - add the entries of one file; a missing file is skipped */
static int load_file(struct alias_db *db, const char *file, char *err, size_t errsz)
{
    FILE *fp = fopen(file, "re");
    if (fp == NULL) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errsz, "%s: %s", file, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(fp), &st) < 0) {
        snprintf(err, errsz, "%s: %s", file, strerror(errno));
        fclose(fp);
        return -1;
    }
    struct load_state ls = {.file = file, .st = &st, .logical = BUF_INIT, .start = 0};
    char *line = NULL;
    size_t linecap = 0;
    ssize_t len;
    int lineno = 0, rc = 0;
    while (rc == 0 && (len = getline(&line, &linecap, fp)) >= 0) {
        lineno++;
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        if (len > 0 && line[len - 1] == '\r')
            line[--len] = '\0';
        if (memchr(line, '\0', (size_t)len) != NULL) {
            snprintf(err, errsz, "%s:%d: NUL byte in line", file, lineno);
            rc = -1;
            break;
        }
        rc = load_line(db, &ls, line, lineno, err, errsz);
    }
    if (rc == 0 && ferror(fp)) {
        snprintf(err, errsz, "%s: read error", file);
        rc = -1;
    }
    if (rc == 0)
        rc = flush_entry(db, &ls, err, errsz);
    free(line);
    buf_free(&ls.logical);
    fclose(fp);
    return rc;
}

/* alias_load - read every file of the list into one table */
struct alias_db *alias_load(const char *files, char *err, size_t errsz)
{
    struct alias_db *db = xcalloc(1, sizeof(*db));
    db_rehash(db);
    char path[PATH_MAX];
    const char *p = files ? files : "";
    while (config_list_next(&p, path, sizeof(path)) > 0) {
        if (load_file(db, path, err, errsz) < 0) {
            alias_free(db);
            return NULL;
        }
    }
    return db;
}

/* alias_free - release the table */
void alias_free(struct alias_db *db)
{
    if (db == NULL)
        return;
    for (size_t i = 0; i < db->n; i++)
        entry_free(&db->entries[i]);
    free(db->entries);
    free(db->slots);
    free(db);
}

/* alias_lookup - case-insensitive exact match on the local part */
const struct alias_entry *alias_lookup(const struct alias_db *db, const char *name)
{
    if (db == NULL || name == NULL || db->nslots == 0)
        return NULL;
    size_t i = db_find_slot(db, name);
    return db->slots[i] ? &db->entries[db->slots[i] - 1] : NULL;
}
