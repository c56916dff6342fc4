/* log.h - the one set of logging calls tern uses.
 *
 * Lines are written Postfix-style so pflogsumm and postfix_exporter can read
 * them:  "Nov 22 05:31:49 HOST tern/PROGRAM[PID]: TEXT".  log_warn() appends
 * strerror(errno); log_warnx() does not.  log_fatal*() exit(1).
 * Client-supplied bytes must go through log_printable() before logging.
 */
#ifndef TERN_LOG_H
#define TERN_LOG_H

#include <stdarg.h>
#include <stddef.h>

#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))

/* log_init - set program name ("smtpd", "local", ...) and output file (NULL: stderr) */
int log_init(const char *program, const char *path);
void log_set_program(const char *program);
void log_set_hostname(const char *hostname);
void log_reopen(void);
int log_fileno(void); /* the descriptor logs go to (kept open in children) */

void log_info(const char *fmt, ...) PRINTF_LIKE(1, 2);
/* log_info_as - an info line under another program name ("local" for
 * delivery results, as pflogsumm expects them from Postfix's local(8)) */
void log_info_as(const char *program, const char *fmt, ...) PRINTF_LIKE(2, 3);
void log_warn(const char *fmt, ...) PRINTF_LIKE(1, 2);
void log_warnx(const char *fmt, ...) PRINTF_LIKE(1, 2);
void log_debug(const char *fmt, ...) PRINTF_LIKE(1, 2);
_Noreturn void log_fatal(const char *fmt, ...) PRINTF_LIKE(1, 2);
_Noreturn void log_fatalx(const char *fmt, ...) PRINTF_LIKE(1, 2);

extern int log_verbose;

/* log_printable - copy at most len bytes of src into dst (size dstsz) with
 * control bytes, backslash and (unless utf8) non-ASCII bytes escaped as \xHH (UTF-8 kept if utf8 != 0);
 * always NUL-terminates.  Returns dst. */
char *log_printable(char *dst, size_t dstsz, const char *src, size_t len, int utf8);

#endif
