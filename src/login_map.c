/* login_map.c - which envelope senders an authenticated user may use
 *
 * The map file has lines "ADDRESS  login[, login...]"; ADDRESS is user@domain
 * or @domain and is kept in lower case.  Login names are compared exactly,
 * like the password file's user names.  The first key found for a sender
 * decides: its exact address, then the address without its extension, then
 * its @domain.
 */
#include "login_map.h"

#include "config.h"
#include "mapfile.h"
#include "xmalloc.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct map_entry {
    char *key;     /* lower case: user@domain or @domain */
    char **logins; /* NULL-terminated */
    unsigned long line;
};

struct login_map {
    struct map_entry *e; /* sorted by key */
    size_t n, alloc;
};

/* lower - ASCII lower-case s in place; returns s */
static char *lower(char *s)
{
    for (char *p = s; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return s;
}

/* next_token - the next item separated by commas and/or white space, NUL-terminated in place */
static char *next_token(char **p)
{
    char *s = *p + strspn(*p, ", \t\r\n");
    if (*s == '\0')
        return NULL;
    char *e = s + strcspn(s, ", \t\r\n");
    *p = *e ? e + 1 : e;
    *e = '\0';
    return s;
}

/* has_control - does s contain a control byte? */
static int has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

/* key_valid - user@domain or @domain with a non-empty domain: NULL, or why not */
static const char *key_valid(const char *k)
{
    const char *at = strrchr(k, '@');
    if (at == NULL || at[1] == '\0')
        return "expected user@domain or @domain";
    if (has_control(k))
        return "control character in address";
    return NULL;
}

/* entry_free - free one entry's strings */
static void entry_free(struct map_entry *e)
{
    free(e->key);
    for (char **l = e->logins; l != NULL && *l != NULL; l++)
        free(*l);
    free(e->logins);
}

/* parse_logins - collect the login names after the key; NULL, or why not */
static const char *parse_logins(char *rest, struct map_entry *e)
{
    size_t n = 0;
    char *tok;
    while ((tok = next_token(&rest)) != NULL) {
        if (has_control(tok))
            return "control character in login name";
        e->logins = xrealloc(e->logins, (n + 2) * sizeof(char *));
        e->logins[n++] = xstrdup(tok);
        e->logins[n] = NULL;
    }
    return n == 0 ? "address without a login" : NULL;
}

/* parse_line - one non-comment line into e; NULL, or why not */
static const char *parse_line(char *s, struct map_entry *e)
{
    char *key = next_token(&s);
    if (key == NULL)
        return "expected user@domain or @domain";
    const char *why = key_valid(key);
    if (why != NULL)
        return why;
    e->key = lower(xstrdup(key));
    return parse_logins(s, e);
}

/* map_line - mapfile_line_fn: one "ADDRESS  login[, login...]" line into the map */
static const char *map_line(void *arg, char *line, unsigned long lineno)
{
    struct login_map *m = arg;
    m->e = xgrow(m->e, m->n, &m->alloc, sizeof(*m->e));
    struct map_entry *e = &m->e[m->n++];
    memset(e, 0, sizeof(*e));
    e->line = lineno;
    return parse_line(line, e);
}

/* entry_cmp - qsort order: by key, then line */
static int entry_cmp(const void *a, const void *b)
{
    const struct map_entry *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c != 0 ? c : (x->line > y->line) - (x->line < y->line);
}

/* check_duplicates - after sorting, refuse a key given twice; 0 or -1 */
static int check_duplicates(const struct login_map *m, const char *path, char *err, size_t errsz)
{
    for (size_t i = 1; i < m->n; i++) {
        if (strcmp(m->e[i - 1].key, m->e[i].key) == 0) {
            char why[64];
            snprintf(why, sizeof(why), "duplicate address (first on line %lu)", m->e[i - 1].line);
            return mapfile_fail(err, errsz, path, m->e[i].line, why);
        }
    }
    return 0;
}

/* login_map_load - read a sender login map; NULL with "PATH:LINE: ..." on error */
struct login_map *login_map_load(const char *path, char *err, size_t errsz)
{
    struct login_map *m = xcalloc(1, sizeof(*m));
    int rc = mapfile_load(path, map_line, m, err, errsz);
    if (rc == 0 && m->n > 1) {
        qsort(m->e, m->n, sizeof(*m->e), entry_cmp);
        rc = check_duplicates(m, path, err, errsz);
    }
    if (rc < 0) {
        login_map_free(m);
        return NULL;
    }
    return m;
}

/* login_map_free - release the map */
void login_map_free(struct login_map *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->n; i++)
        entry_free(&m->e[i]);
    free(m->e);
    free(m);
}

/* key_cmp - bsearch: a key against an entry */
static int key_cmp(const void *key, const void *elem)
{
    return strcmp(key, ((const struct map_entry *)elem)->key);
}

/* lookup - the entry for key (lower case), or NULL */
static const struct map_entry *lookup(const struct login_map *m, const char *key)
{
    if (m->n == 0)
        return NULL;
    return bsearch(key, m->e, m->n, sizeof(*m->e), key_cmp);
}

/* strip_extension - copy addr into out without the extension of its local part
 * (from the first recipient_delimiter character, unless that starts the local part) */
static void strip_extension(const char *addr, const char *delims, char *out, size_t outsz)
{
    const char *at = strrchr(addr, '@');
    size_t local = at != NULL ? (size_t)(at - addr) : strlen(addr);
    size_t keep = local;
    if (delims != NULL && delims[0] != '\0') {
        size_t d = strcspn(addr, delims);
        if (d > 0 && d < local)
            keep = d;
    }
    snprintf(out, outsz, "%.*s%s", (int)keep, addr, addr + local);
}

/* entry_has - is login one of the entry's logins (exact)? */
static int entry_has(const struct map_entry *e, const char *login)
{
    for (char **l = e->logins; *l != NULL; l++)
        if (strcmp(*l, login) == 0)
            return 1;
    return 0;
}

/* map_owns - the first key found for sender (lower case) decides */
static int map_owns(const struct login_map *m, const char *sender, const char *bare,
                    const char *login)
{
    const struct map_entry *e = lookup(m, sender);
    if (e == NULL)
        e = lookup(m, bare);
    if (e == NULL && strrchr(sender, '@') != NULL)
        e = lookup(m, strrchr(sender, '@'));
    return e != NULL && entry_has(e, login);
}

/* default_owns - without a map: exactly the login itself, or login[+ext]@ a local domain */
static int default_owns(const struct config *cfg, const char *login, const char *sender,
                        const char *bare)
{
    if (strcasecmp(sender, login) == 0)
        return 1;
    const char *at = strrchr(bare, '@');
    if (strchr(login, '@') != NULL || at == NULL || cfg == NULL)
        return 0;
    size_t ll = strlen(login);
    if ((size_t)(at - bare) != ll || strncasecmp(bare, login, ll) != 0)
        return 0;
    const char *dom = at + 1, *origin = cfg->myorigin != NULL ? cfg->myorigin : "";
    return config_list_contains(cfg->mydestination, dom) ||
           (origin[0] != '\0' && strcasecmp(dom, origin) == 0);
}

/* login_map_owns - may login use envelope sender (with the map, or the default rules)? */
int login_map_owns(const struct login_map *m, const struct config *cfg, const char *login,
                   const char *sender)
{
    if (sender == NULL || login == NULL)
        return 0;
    if (sender[0] == '\0')
        return 1;
    if (login[0] == '\0')
        return 0;
    size_t n = strlen(sender) + 1;
    char *s = lower(xstrdup(sender)), *bare = xmalloc(n);
    strip_extension(s, cfg != NULL ? cfg->recipient_delimiter : "+", bare, n);
    int ok = m != NULL ? map_owns(m, s, bare, login) : default_owns(cfg, login, s, bare);
    free(s);
    free(bare);
    return ok;
}
