/* tmpfile_helper.h - temporary directories and files for the unit tests, and the check of a
 * "PATH:LINE: reason" error.  Include after <cmocka.h>. */
#ifndef TERN_TMPFILE_HELPER_H
#define TERN_TMPFILE_HELPER_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* tmp_dir_make - create /tmp/tern-NAME-XXXXXX and put its path in dir; 0, or -1 */
static inline int tmp_dir_make(char *dir, size_t dirsz, const char *name)
{
    if ((size_t)snprintf(dir, dirsz, "/tmp/tern-%s-XXXXXX", name) >= dirsz)
        return -1;
    return mkdtemp(dir) != NULL ? 0 : -1;
}

/* tmp_dir_remove - remove dir and everything in it */
static inline void tmp_dir_remove(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* tmp_file_put - path holds exactly the len bytes of text (NUL bytes too) */
static inline void tmp_file_put(const char *path, const char *text, size_t len)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(fwrite(text, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

/* tmp_file_write - path holds the string text */
static inline void tmp_file_write(const char *path, const char *text)
{
    tmp_file_put(path, text, strlen(text));
}

/* assert_error_at - err starts with "PATH:LINE: " and holds want */
static inline void assert_error_at(const char *err, const char *path, int line, const char *want)
{
    char prefix[300];
    snprintf(prefix, sizeof(prefix), "%s:%d: ", path, line);
    if (strncmp(err, prefix, strlen(prefix)) != 0 || strstr(err, want) == NULL)
        fail_msg("error \"%s\", wanted \"%s...%s\"", err, prefix, want);
}

#endif
