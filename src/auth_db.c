/* auth_db.c - the SMTP AUTH password file (user:hash lines, crypt(3) hashes)
 *
 * Hashes are computed with libxcrypt's crypt_rn() into a heap-allocated
 * struct crypt_data per call, so verification may run in any thread.
 * Passwords and hashes never appear in error messages.
 */
#include "auth_db.h"

#include "mapfile.h"
#include "sasl.h"
#include "xmalloc.h"

#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A yescrypt hash (default cost, as crypt_gensalt_rn("$y$", 0, ...) makes them)
 * of a random password nobody knows: unknown users are checked against it so
 * they take as long as known ones. */
static const char dummy_hash[] =
    "$y$j9T$xYudTVPXcq57X66mmy.M7.$g/e2PEXkywwcyXbyNqo.N6xx8oSEuIiaK/p6D9t6.H5";

struct auth_user {
    char *user;
    char *hash;
    unsigned long line;
};

struct auth_db {
    struct auth_user *users; /* sorted by user */
    size_t n, alloc;
};

/* A hash scheme accepted in the file: prefix and length of the final '$' field
 * (bcrypt has no '$' before its checksum: hashlen is the length after the cost). */
struct hash_scheme {
    const char *prefix;
    size_t hashlen;
};

static const struct hash_scheme schemes[] = {
    {"$y$", 43}, {"$gy$", 43}, {"$7$", 43}, {"$2b$", 53}, {"$2y$", 53}, {"$6$", 86}, {"$5$", 43},
};

/* scheme_of - the accepted scheme hash starts with, or NULL */
static const struct hash_scheme *scheme_of(const char *hash)
{
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
        if (strncmp(hash, schemes[i].prefix, strlen(schemes[i].prefix)) == 0)
            return &schemes[i];
    return NULL;
}

/* hash_chars_ok - only crypt(3)'s alphabet, '$', and '=' (for "rounds=") */
static int hash_chars_ok(const char *h)
{
    return h[strspn(h, "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz$=")] ==
           '\0';
}

/* hash_valid - a complete hash of an accepted scheme: NULL, or why not */
static const char *hash_valid(const char *h)
{
    const struct hash_scheme *s = scheme_of(h);
    if (s == NULL)
        return h[0] == '$' ? "unsupported hash scheme"
                           : "not a crypt(3) hash (plaintext passwords are not accepted)";
    int check = crypt_checksalt(h); /* OK, or LEGACY for $5$: fine, it is on the list */
    if (!hash_chars_ok(h) || check == CRYPT_SALT_INVALID)
        return "malformed hash";
    if (check == CRYPT_SALT_METHOD_DISABLED)
        return "hash scheme disabled in this libxcrypt";
    const char *tail;
    if (s->prefix[1] == '2') { /* $2b$NN$ then 22 salt + 31 checksum characters */
        tail = h + strlen(s->prefix) + 3;
        if (strlen(h) < strlen(s->prefix) + 3 || h[strlen(s->prefix) + 2] != '$')
            return "malformed hash";
    } else {
        tail = strrchr(h, '$') + 1;
    }
    if (tail <= h + strlen(s->prefix) || strlen(tail) != s->hashlen || strchr(tail, '$') != NULL)
        return "malformed hash (truncated?)";
    return NULL;
}

/* user_valid - a user name AUTH can present: NULL, or why not */
static const char *user_valid(const char *u, size_t len)
{
    if (len == 0)
        return "empty user name";
    if (len > SASL_FIELD_MAX)
        return "user name too long";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)u[i];
        if (c <= 0x20 || c == 0x7f)
            return "white space or control character in user name";
    }
    return NULL;
}

/* chomp - remove trailing blanks and carriage returns */
static void chomp(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
}

/* parse_line - split "user:hash" into a new entry; NULL, or why not */
static const char *parse_line(char *s, struct auth_user *u)
{
    chomp(s);
    char *colon = strchr(s, ':');
    if (colon == NULL)
        return "expected user:hash";
    const char *why = user_valid(s, (size_t)(colon - s));
    if (why == NULL)
        why = hash_valid(colon + 1);
    if (why != NULL)
        return why;
    u->user = xstrndup(s, (size_t)(colon - s));
    u->hash = xstrdup(colon + 1);
    return NULL;
}

/* user_cmp - qsort/bsearch order of entries: by user name, then line */
static int user_cmp(const void *a, const void *b)
{
    const struct auth_user *x = a, *y = b;
    int c = strcmp(x->user, y->user);
    if (c != 0)
        return c;
    return (x->line > y->line) - (x->line < y->line);
}

/* find_duplicate - the later entry of the first duplicate user (db sorted), or NULL */
static const struct auth_user *find_duplicate(const struct auth_db *db)
{
    for (size_t i = 1; i < db->n; i++)
        if (strcmp(db->users[i - 1].user, db->users[i].user) == 0)
            return &db->users[i];
    return NULL;
}

/* open_private - open path for reading; refuse it when others may read it */
static FILE *open_private(const char *path, char *err, size_t errsz)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        mapfile_fail(err, errsz, path, 0, strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    const char *why = NULL;
    if (!S_ISREG(st.st_mode))
        why = "not a regular file";
    else if (st.st_mode & S_IROTH)
        why = "readable by others (chmod o-rwx)";
    FILE *fp = why == NULL ? fdopen(fd, "r") : NULL;
    if (fp == NULL) {
        mapfile_fail(err, errsz, path, 0, why != NULL ? why : strerror(errno));
        close(fd);
    }
    return fp;
}

/* user_line - mapfile_line_fn: one "user:hash" line into the table */
static const char *user_line(void *arg, char *line, unsigned long lineno)
{
    struct auth_db *db = arg;
    db->users = xgrow(db->users, db->n, &db->alloc, sizeof(*db->users));
    struct auth_user *u = &db->users[db->n];
    const char *why = parse_line(line, u);
    if (why == NULL) {
        u->line = lineno;
        db->n++;
    }
    return why;
}

/* auth_db_load - read and check the password file; NULL with "PATH:LINE: ..." on error */
struct auth_db *auth_db_load(const char *path, char *err, size_t errsz)
{
    FILE *fp = open_private(path, err, errsz);
    if (fp == NULL)
        return NULL;
    struct auth_db *db = xcalloc(1, sizeof(*db));
    int rc = mapfile_read(fp, path, user_line, db, err, errsz);
    fclose(fp);
    if (rc == 0 && db->n > 1) {
        qsort(db->users, db->n, sizeof(*db->users), user_cmp);
        const struct auth_user *d = find_duplicate(db);
        if (d != NULL) {
            char why[64];
            snprintf(why, sizeof(why), "duplicate user (first on line %lu)", d[-1].line);
            rc = mapfile_fail(err, errsz, path, d->line, why);
        }
    }
    if (rc < 0) {
        auth_db_free(db);
        return NULL;
    }
    return db;
}

/* auth_db_free - release the table, wiping the hashes */
void auth_db_free(struct auth_db *db)
{
    if (db == NULL)
        return;
    for (size_t i = 0; i < db->n; i++) {
        explicit_bzero(db->users[i].hash, strlen(db->users[i].hash));
        free(db->users[i].user);
        free(db->users[i].hash);
    }
    free(db->users);
    free(db);
}

/* name_cmp - bsearch: a user name against an entry */
static int name_cmp(const void *key, const void *elem)
{
    return strcmp(key, ((const struct auth_user *)elem)->user);
}

/* auth_db_hash - the stored hash of user (exact match), or NULL */
const char *auth_db_hash(const struct auth_db *db, const char *user)
{
    if (db == NULL || user == NULL || db->n == 0)
        return NULL;
    const struct auth_user *u = bsearch(user, db->users, db->n, sizeof(*db->users), name_cmp);
    return u != NULL ? u->hash : NULL;
}

/* ct_equal - compare two strings in time that depends only on their lengths */
static int ct_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char diff = la != lb;
    for (size_t i = 0; i < la; i++)
        diff |= (unsigned char)a[i] ^ (unsigned char)(i < lb ? b[i] : 0);
    return diff == 0;
}

/* crypt_with - crypt_rn of password with setting into a fresh crypt_data;
 * returns it (output in ->output) or NULL when the setting is invalid */
static struct crypt_data *crypt_with(const char *password, const char *setting)
{
    struct crypt_data *cd = xcalloc(1, sizeof(*cd));
    const char *r = crypt_rn(password, setting, cd, (int)sizeof(*cd));
    if (r == NULL || r[0] == '*') {
        explicit_bzero(cd, sizeof(*cd));
        free(cd);
        return NULL;
    }
    return cd;
}

/* crypt_free - wipe and free a crypt_data */
static void crypt_free(struct crypt_data *cd)
{
    if (cd == NULL)
        return;
    explicit_bzero(cd, sizeof(*cd));
    free(cd);
}

/* auth_hash_verify - does password match hash (NULL: the dummy hash, always 0)? */
int auth_hash_verify(const char *hash, const char *password)
{
    const char *setting = hash != NULL ? hash : dummy_hash;
    struct crypt_data *cd = crypt_with(password != NULL ? password : "", setting);
    int ok = cd != NULL && ct_equal(cd->output, setting);
    crypt_free(cd);
    return hash != NULL && password != NULL && ok;
}

/* auth_hash_password - a new hash of password with a fresh salt for prefix */
int auth_hash_password(const char *password, const char *prefix, char *out, size_t outsz)
{
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    if (password == NULL || out == NULL || outsz == 0)
        return -1;
    out[0] = '\0';
    if (crypt_gensalt_rn(prefix != NULL ? prefix : "$y$", 0, NULL, 0, salt, (int)sizeof(salt)) ==
        NULL)
        return -1;
    struct crypt_data *cd = crypt_with(password, salt);
    int rc = -1;
    if (cd != NULL && strlen(cd->output) < outsz) {
        memcpy(out, cd->output, strlen(cd->output) + 1);
        rc = 0;
    }
    crypt_free(cd);
    return rc;
}
