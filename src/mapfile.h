/* mapfile.h - the lines of a map file (transport, TLS and SASL maps, login maps, passwords)
 *
 * Map files share one lexical layer: a line ends in "\n" or "\r\n", a NUL byte is an error,
 * blank lines and lines whose first non-blank character is '#' are skipped.  What a line means
 * is the caller's business.  Errors name the file and line: "PATH:LINE: reason".
 */
#ifndef TERN_MAPFILE_H
#define TERN_MAPFILE_H

#include <stddef.h>
#include <stdio.h>

/* mapfile_line_fn - take one line (line end removed, may be changed in place; the buffer is
 * wiped after the file is read); NULL, or why the line is refused (a string that outlives the
 * call) */
typedef const char *(*mapfile_line_fn)(void *arg, char *line, unsigned long lineno);

/* mapfile_fail - "PATH:LINE: why" (LINE 0: "PATH: why") into err; returns -1 */
int mapfile_fail(char *err, size_t errsz, const char *path, unsigned long line, const char *why);

/* mapfile_read - hand every line of fp that is not blank or a comment to fn, stopping at the
 * first refusal; 0, or -1 with err set.  path is for the messages only. */
int mapfile_read(FILE *fp, const char *path, mapfile_line_fn fn, void *arg, char *err,
                 size_t errsz);

/* mapfile_load - mapfile_read of the file at path; cannot open it: -1, "PATH: strerror" */
int mapfile_load(const char *path, mapfile_line_fn fn, void *arg, char *err, size_t errsz);

#endif
