/* smtp_cmd.h - SMTP command line lexing and ESMTP parameter parsing (pure, no I/O) */
#ifndef TERN_SMTP_CMD_H
#define TERN_SMTP_CMD_H

#include <stddef.h>

#include "addr.h"

enum smtp_verb {
    CMD_UNKNOWN = 0,
    CMD_HELO, CMD_EHLO, CMD_MAIL, CMD_RCPT, CMD_DATA, CMD_BDAT, CMD_RSET, CMD_NOOP,
    CMD_HELP, CMD_VRFY, CMD_EXPN, CMD_QUIT, CMD_STARTTLS, CMD_AUTH,
    CMD_HTTP, /* "GET / HTTP/1.1", "POST ...", "CONNECT ..." and friends: another protocol */
    CMD__COUNT
};

/* smtp_cmd_lex - identify the verb of a command line (no CRLF, NUL-free).
 * Verbs are case-insensitive.  "MAIL FROM:" and "RCPT TO:" are recognised
 * with their keyword (case-insensitive, optional space before ':' is NOT
 * allowed: "MAIL FROM :" is a syntax error reported as CMD_MAIL with
 * *args = NULL).  *args points at the argument text (after "FROM:"/"TO:" for
 * MAIL/RCPT, after the verb and one space otherwise; "" if none). */
enum smtp_verb smtp_cmd_lex(const char *line, const char **args);

/* MAIL FROM parameters (RFC 1870, 6152, 6531, 3461) */
enum body_type { BODY_NONE = 0, BODY_7BIT, BODY_8BITMIME };
enum dsn_ret { RET_NONE = 0, RET_FULL, RET_HDRS };

struct mail_params {
    long long size;         /* SIZE=, -1 if absent */
    enum body_type body;
    int smtputf8;
    enum dsn_ret ret;
    char envid[101];        /* ENVID decoded from xtext (RFC 3461: at most 100 chars), "" if absent */
};

#define NOTIFY_NEVER 0x01
#define NOTIFY_SUCCESS 0x02
#define NOTIFY_FAILURE 0x04
#define NOTIFY_DELAY 0x08

struct rcpt_params {
    int notify;             /* NOTIFY_* bits, 0 if absent */
    char orcpt_type[32];    /* "rfc822" / "utf-8", "" if absent */
    char orcpt[ADDR_PATH_MAX * 2 + 1]; /* ORCPT address decoded from xtext */
};

enum param_status {
    PARAM_OK = 0,
    PARAM_UNKNOWN,    /* unknown keyword: 555 5.5.4 */
    PARAM_BAD_VALUE,  /* bad value / duplicate / malformed: 501 5.5.4 */
};

/* smtp_mail_params / smtp_rcpt_params - parse the text after the path
 * (may start with white space).  On error, *bad is set to the offending
 * keyword (NUL-terminated copy in badbuf of size badsz). */
enum param_status smtp_mail_params(const char *s, struct mail_params *p, char *badbuf, size_t badsz);
enum param_status smtp_rcpt_params(const char *s, struct rcpt_params *p, char *badbuf, size_t badsz);

/* smtp_bdat_args - "<size> [LAST]": returns 0 and fills size/last, or -1 */
int smtp_bdat_args(const char *s, unsigned long long *size, int *last);

#endif
