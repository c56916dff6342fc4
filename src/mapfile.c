/* mapfile.c - the lines of a map file
 *
 * The line buffer is wiped when done: password maps pass through it.
 */
#include "mapfile.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

int mapfile_fail(char *err, size_t errsz, const char *path, unsigned long line, const char *why)
{
    if (line > 0)
        snprintf(err, errsz, "%s:%lu: %s", path, line, why);
    else
        snprintf(err, errsz, "%s: %s", path, why);
    return -1;
}

/* skip_line - blank or '#' comment */
static int skip_line(const char *s)
{
    s += strspn(s, " \t\r\n");
    return *s == '\0' || *s == '#';
}

/* strip_eol - remove a trailing "\n" or "\r\n" (len = strlen(s)) */
static void strip_eol(char *s, size_t len)
{
    if (len > 0 && s[len - 1] == '\n')
        s[--len] = '\0';
    if (len > 0 && s[len - 1] == '\r')
        s[--len] = '\0';
}

int mapfile_read(FILE *fp, const char *path, mapfile_line_fn fn, void *arg, char *err,
                 size_t errsz)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    unsigned long lineno = 0;
    int rc = 0;
    while (rc == 0 && (len = getline(&line, &cap, fp)) >= 0) {
        lineno++;
        if (strlen(line) != (size_t)len) {
            rc = mapfile_fail(err, errsz, path, lineno, "NUL byte in line");
            break;
        }
        if (skip_line(line))
            continue;
        strip_eol(line, (size_t)len);
        const char *why = fn(arg, line, lineno);
        if (why != NULL)
            rc = mapfile_fail(err, errsz, path, lineno, why);
    }
    if (rc == 0 && ferror(fp))
        rc = mapfile_fail(err, errsz, path, 0, strerror(errno));
    if (line != NULL)
        explicit_bzero(line, cap);
    free(line);
    return rc;
}

int mapfile_load(const char *path, mapfile_line_fn fn, void *arg, char *err, size_t errsz)
{
    FILE *fp = fopen(path, "re");
    if (fp == NULL)
        return mapfile_fail(err, errsz, path, 0, strerror(errno));
    int rc = mapfile_read(fp, path, fn, arg, err, errsz);
    fclose(fp);
    return rc;
}
