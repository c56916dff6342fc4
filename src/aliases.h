/* aliases.h - /etc/aliases-format alias tables (loaded into memory) */
#ifndef TERN_ALIASES_H
#define TERN_ALIASES_H

#include <stddef.h>
#include <sys/types.h>

enum alias_target_type {
    ALIAS_ADDR,     /* user or user@domain: resolved again (local) or forwarded (remote) */
    ALIAS_FILE,     /* /path/file: append in mbox format */
    ALIAS_PIPE,     /* "|command": message on stdin of /bin/sh -c command (command from the
                       alias file only; envelope data only in environment variables) */
    ALIAS_INCLUDE,  /* :include:/path - targets read from that file at expansion time */
};

struct alias_target {
    enum alias_target_type type;
    char *value;    /* address, path or command (quotes removed) */
};

struct alias_entry {
    char *name;     /* lower-cased local part */
    struct alias_target *targets;
    size_t ntargets;
    uid_t owner;    /* owner of the file it came from (runs its commands when tern is root) */
    gid_t group;
    char *source;   /* "FILE:LINE" for logs */
};

struct alias_db;

/* alias_load - read every file in the LIST value (comma/space separated).
 * A missing file is not an error (logged by the caller when wanted); a
 * malformed line is: NULL with "FILE:LINE: ..." in err. */
struct alias_db *alias_load(const char *files, char *err, size_t errsz);
void alias_free(struct alias_db *db);

/* alias_lookup - case-insensitive exact match on the local part, or NULL */
const struct alias_entry *alias_lookup(const struct alias_db *db, const char *name);

/* alias_parse_targets - split a right-hand side ("a, b, \"|cmd arg\", /f") into targets
 * (used for :include: files too).  Returns count, or -1 with err set. */
long alias_parse_targets(const char *rhs, struct alias_target **out, char *err, size_t errsz);
void alias_targets_free(struct alias_target *t, size_t n);

#endif
