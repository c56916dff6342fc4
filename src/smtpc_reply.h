/* smtpc_reply.h - parsing a peer's SMTP replies (client side: outbound, LMTP)
 *
 * Hostile peers must not make tern read out of bounds or loop (OpenSMTPD
 * CVE-2020-8794: "250-" with nothing after it).  Pure functions, no I/O.
 */
#ifndef TERN_SMTPC_REPLY_H
#define TERN_SMTPC_REPLY_H

#include <stddef.h>

#define SMTPC_LINE_MAX 4096     /* a reply line longer than this is an error */
#define SMTPC_LINES_MAX 1000    /* lines in one reply */

enum smtpc_parse { SMTPC_MORE, SMTPC_DONE, SMTPC_ERROR };

struct smtpc_reply {
    int code;                   /* 200..599 */
    char esc[16];               /* enhanced status code of the first line ("" if none) */
    char text[4096];            /* text of all lines (after "NNN-"/"NNN " and any enhanced
                                   code of the first line), joined with '\n', truncated */
    size_t lines;
    int bare_lf;                /* some line ended in a bare LF */
};

/* smtpc_reply_parse - parse one reply at the start of buf[0..len).
 * SMTPC_DONE: *used = octets of the whole reply (including the final line's
 * end).  SMTPC_MORE: the final line has not arrived yet (nothing consumed).
 * SMTPC_ERROR: a malformed line (not three digits 2xx-5xx followed by ' ',
 * '-' or end of line; codes differing between lines; a line over
 * SMTPC_LINE_MAX; more than SMTPC_LINES_MAX lines; a NUL byte).  Lines end
 * in CRLF; a bare LF is accepted and noted in bare_lf. */
enum smtpc_parse smtpc_reply_parse(const char *buf, size_t len, struct smtpc_reply *r, size_t *used);

/* EHLO extensions a peer offers */
#define SMTPC_EXT_PIPELINING 0x001
#define SMTPC_EXT_SIZE 0x002
#define SMTPC_EXT_8BITMIME 0x004
#define SMTPC_EXT_SMTPUTF8 0x008
#define SMTPC_EXT_DSN 0x010
#define SMTPC_EXT_CHUNKING 0x020
#define SMTPC_EXT_STARTTLS 0x040
#define SMTPC_EXT_AUTH 0x080
#define SMTPC_EXT_ENHANCEDSTATUSCODES 0x100

struct smtpc_ext {
    unsigned flags;             /* SMTPC_EXT_* */
    unsigned long long size;    /* SIZE value, 0 if none or unlimited */
    int auth_plain, auth_login; /* AUTH mechanisms offered (AUTH and AUTH= forms) */
};

/* smtpc_ehlo_parse - keywords of an EHLO reply (the first line is the greeting name, skipped).
 * Keywords are case-insensitive; unknown ones are ignored. */
void smtpc_ehlo_parse(const struct smtpc_reply *r, struct smtpc_ext *ext);

#endif
