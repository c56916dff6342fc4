/* sasl.h - SASL PLAIN and LOGIN message decoding (RFC 4954, RFC 4616) and base64
 *
 * Pure functions: no I/O, no allocation, no globals.  Every byte a client
 * sends in an AUTH exchange passes through these before anything else.
 */
#ifndef TERN_SASL_H
#define TERN_SASL_H

#include <stddef.h>

#define SASL_FIELD_MAX 255   /* longest user name or password accepted */
#define SASL_LINE_MAX 12288  /* longest base64 line accepted in an AUTH exchange */

/* sasl_b64_decode - strict RFC 4648 base64 (no white space, correct padding,
 * no data after padding).  Returns the decoded length, or -1 if malformed or
 * if it does not fit in outsz.  "=" alone decodes to the empty string (RFC 4954 4). */
long sasl_b64_decode(const char *in, size_t inlen, unsigned char *out, size_t outsz);

/* sasl_b64_encode - returns the encoded length (NUL-terminated), -1 if it does not fit */
long sasl_b64_encode(const unsigned char *in, size_t inlen, char *out, size_t outsz);

/* sasl_plain_parse - a decoded PLAIN message "authzid NUL authcid NUL passwd".
 * Returns 0 and fills authcid/passwd (NUL-terminated), or -1 when malformed:
 * not exactly two NULs, empty authcid or passwd, a field over SASL_FIELD_MAX,
 * control bytes in authcid, or an authzid that is non-empty and differs
 * from authcid (proxy authorization is not supported). */
int sasl_plain_parse(const unsigned char *msg, size_t len, char *authcid, size_t authsz,
                     char *passwd, size_t pwsz);

/* sasl_login_field - a decoded LOGIN user name or password: no NUL, not
 * empty, at most SASL_FIELD_MAX, no control bytes (user name only when
 * is_user).  Returns 0 and copies it NUL-terminated into out, or -1. */
int sasl_login_field(const unsigned char *msg, size_t len, int is_user, char *out, size_t outsz);

#endif
