/* auth_db.h - the SMTP AUTH password file (user:hash lines, crypt(3) hashes) */
#ifndef TERN_AUTH_DB_H
#define TERN_AUTH_DB_H

#include <stddef.h>

struct auth_db;

/* auth_db_load - read PATH: "user:hash" lines, '#' comments, blank lines.
 * Only crypt(3) hashes are accepted ($y$ yescrypt, $gy$, $7$, $2b$/$2y$
 * bcrypt, $6$ sha512-crypt, $5$ sha256-crypt): a plaintext or unknown
 * hash, a duplicate user, or a malformed line is an error "PATH:LINE: ...".
 * The file must not be readable by others (mode & 004): error. */
struct auth_db *auth_db_load(const char *path, char *err, size_t errsz);
void auth_db_free(struct auth_db *db);

/* auth_db_hash - the stored hash of user (exact, case-sensitive), or NULL */
const char *auth_db_hash(const struct auth_db *db, const char *user);

/* auth_hash_verify - does password match hash?  Thread-safe (crypt_rn with
 * its own buffer), constant-time comparison.  hash NULL: verify against a
 * built-in dummy yescrypt hash (same cost) and return 0, so unknown users
 * take as long as known ones. */
int auth_hash_verify(const char *hash, const char *password);

/* auth_hash_password - a new hash of password with crypt_gensalt_rn for
 * prefix ("$y$" when NULL).  Returns 0, or -1. */
int auth_hash_password(const char *password, const char *prefix, char *out, size_t outsz);

#endif
