/* addr.h - RFC 5321 / RFC 6531 path and address parsing, xtext (RFC 3461)
 *
 * Pure functions: no I/O, no allocation, no globals.  Every network-supplied
 * address passes through addr_parse_path() before anything else sees it.
 */
#ifndef TERN_ADDR_H
#define TERN_ADDR_H

#include <stddef.h>

#define ADDR_LOCAL_MAX 64    /* octets, RFC 5321 4.5.3.1.1 */
#define ADDR_DOMAIN_MAX 255  /* octets, 4.5.3.1.2 */
#define ADDR_PATH_MAX 256    /* octets incl. angle brackets, 4.5.3.1.3 */

enum addr_status {
    ADDR_OK = 0,
    ADDR_ERR_SYNTAX,        /* generic malformed path */
    ADDR_ERR_UNBALANCED,    /* '<' without '>' or the reverse, stray brackets */
    ADDR_ERR_NO_DOMAIN,     /* local part without @domain (other than postmaster in RCPT) */
    ADDR_ERR_LOCAL_LONG,    /* local part over 64 octets */
    ADDR_ERR_DOMAIN_LONG,   /* domain over 255 octets */
    ADDR_ERR_PATH_LONG,     /* whole path over 256 octets */
    ADDR_ERR_CTRL,          /* control character or NUL */
    ADDR_ERR_UTF8,          /* non-ASCII without SMTPUTF8, or invalid UTF-8 */
    ADDR_ERR_NULL_RCPT,     /* <> as a recipient */
    ADDR_ERR_DOMAIN,        /* bad domain or address literal */
};

/* flags for addr_parse_path() */
#define ADDR_F_MAIL 0x01    /* MAIL FROM: (allows <>) rather than RCPT TO: (allows <postmaster>) */
#define ADDR_F_STRICT 0x02  /* strict_rfc821_envelopes: <> required, no space after ':' */
#define ADDR_F_UTF8 0x04    /* SMTPUTF8 was given: UTF-8 local parts and domains allowed */

struct addr {
    char addr[ADDR_PATH_MAX + 1];     /* the mailbox as written: local@domain ("" for <>);
                                         quoted local parts keep their quotes; source route dropped */
    char local[ADDR_LOCAL_MAX + 1];   /* local part with quoting removed (quoted-pairs resolved) */
    char domain[ADDR_DOMAIN_MAX + 1]; /* domain or address literal incl. brackets; "" if none */
    int is_null;                      /* <> */
    int quoted;                       /* local part was a quoted string */
    int literal;                      /* domain is an address literal [1.2.3.4] / [IPv6:...] */
    int utf8;                         /* contains non-ASCII octets */
};

/* addr_parse_path - parse what follows "MAIL FROM:" / "RCPT TO:".
 * arg starts right after the colon.  On ADDR_OK, *rest points at the first
 * byte after the path (white space then ESMTP parameters, or end of string).
 * Accepts, unless ADDR_F_STRICT: one space after the colon and a bare
 * address without angle brackets.  Accepts and drops a source route
 * (<@a,@b:user@dom>).  Never accepts an address a relay check could be
 * fooled by: the returned domain is the one after the last unquoted '@'. */
enum addr_status addr_parse_path(const char *arg, int flags, struct addr *out, const char **rest);

/* addr_status_text - short human text for a status ("Unbalanced '<'", ...) */
const char *addr_status_text(enum addr_status st);

/* addr_domain_valid - RFC 5321 Domain or address-literal (UTF-8 U-labels if utf8) */
int addr_domain_valid(const char *domain, int utf8);

/* addr_utf8_valid - well-formed UTF-8 (no overlongs, no surrogates, no NUL) */
int addr_utf8_valid(const char *s, size_t len);

/* xtext (RFC 3461 4): xchar = '!'..'~' except '+' and '='; others as "+HH" (uppercase hex).
 * xtext_decode: returns decoded length or -1 on malformed input or if the
 * result (plus NUL) does not fit outsz; decoded bytes may not be controls.
 * xtext_encode: returns encoded length or -1 if it does not fit. */
long xtext_decode(const char *in, size_t inlen, char *out, size_t outsz);
long xtext_encode(const char *in, size_t inlen, char *out, size_t outsz);
int xtext_valid(const char *in, size_t inlen);

#endif
