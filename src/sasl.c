/* sasl.c - SASL PLAIN and LOGIN message decoding (RFC 4954, RFC 4616) and base64
 *
 * Everything here is pure: no I/O, no allocation, no globals.  Base64 is
 * decoded strictly (RFC 4648 section 3: no white space, no characters outside
 * the alphabet, canonical padding and zero pad bits), so that exactly one
 * text decodes to a given byte string.
 */
#include "sasl.h"

#include <stdint.h>
#include <string.h>

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* b64_value - the 6-bit value of an alphabet character, or -1 */
static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* b64_quantum - decode one 4-character group; returns the byte count (1-3)
 * or -1.  Padding is allowed only when last; pad bits must be zero. */
static int b64_quantum(const char *in, int last, unsigned char out[3])
{
    int v[4], pad = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '=' && last && i >= 2) {
            pad++;
            v[i] = 0;
            continue;
        }
        if (pad > 0) /* data after padding */
            return -1;
        if ((v[i] = b64_value(c)) < 0)
            return -1;
    }
    uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
    if ((pad == 1 && (w & 0xff) != 0) || (pad == 2 && (w & 0xffff) != 0))
        return -1; /* non-canonical: pad bits set */
    out[0] = (unsigned char)(w >> 16);
    out[1] = (unsigned char)(w >> 8);
    out[2] = (unsigned char)w;
    return 3 - pad;
}

/* sasl_b64_decode - strict RFC 4648 base64 into out; decoded length or -1 */
long sasl_b64_decode(const char *in, size_t inlen, unsigned char *out, size_t outsz)
{
    if (inlen == 1 && in[0] == '=')
        return 0; /* RFC 4954 section 4: an empty initial response */
    if (inlen % 4 != 0 || inlen / 4 * 3 > (size_t)INT32_MAX)
        return -1;
    size_t n = 0;
    for (size_t i = 0; i < inlen; i += 4) {
        unsigned char q[3];
        int k = b64_quantum(in + i, i + 4 == inlen, q);
        if (k < 0 || (size_t)k > outsz - n)
            return -1;
        memcpy(out + n, q, (size_t)k);
        n += (size_t)k;
    }
    return (long)n;
}

/* sasl_b64_encode - base64 of in, NUL-terminated; encoded length or -1 */
long sasl_b64_encode(const unsigned char *in, size_t inlen, char *out, size_t outsz)
{
    if (inlen > (size_t)INT32_MAX || (inlen + 2) / 3 * 4 >= outsz)
        return -1;
    size_t n = 0;
    for (size_t i = 0; i < inlen; i += 3) {
        size_t left = inlen - i;
        uint32_t w = (uint32_t)in[i] << 16;
        if (left > 1)
            w |= (uint32_t)in[i + 1] << 8;
        if (left > 2)
            w |= in[i + 2];
        out[n++] = b64_alphabet[w >> 18 & 63];
        out[n++] = b64_alphabet[w >> 12 & 63];
        out[n++] = left > 1 ? b64_alphabet[w >> 6 & 63] : '=';
        out[n++] = left > 2 ? b64_alphabet[w & 63] : '=';
    }
    out[n] = '\0';
    return (long)n;
}

/* has_control - does s[0..len) contain a control byte (C0 or DEL)? */
static int has_control(const unsigned char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] < 0x20 || s[i] == 0x7f)
            return 1;
    return 0;
}

/* copy_field - copy a non-empty field of at most SASL_FIELD_MAX bytes NUL-terminated into out */
static int copy_field(const unsigned char *s, size_t len, char *out, size_t outsz)
{
    if (len == 0 || len > SASL_FIELD_MAX || len >= outsz)
        return -1;
    memcpy(out, s, len);
    out[len] = '\0';
    return 0;
}

/* clear_out - leave nothing of a rejected message in the caller's buffers */
static void clear_out(char *a, size_t asz, char *b, size_t bsz)
{
    if (a != NULL && asz > 0)
        memset(a, 0, asz);
    if (b != NULL && bsz > 0)
        memset(b, 0, bsz);
}

/* sasl_plain_parse - split "authzid NUL authcid NUL passwd"; 0 or -1 */
int sasl_plain_parse(const unsigned char *msg, size_t len, char *authcid, size_t authsz,
                     char *passwd, size_t pwsz)
{
    clear_out(authcid, authsz, passwd, pwsz);
    const unsigned char *nul1 = msg != NULL ? memchr(msg, '\0', len) : NULL;
    if (nul1 == NULL)
        return -1;
    const unsigned char *cid = nul1 + 1, *end = msg + len;
    const unsigned char *nul2 = memchr(cid, '\0', (size_t)(end - cid));
    if (nul2 == NULL)
        return -1;
    const unsigned char *pw = nul2 + 1;
    size_t zlen = (size_t)(nul1 - msg), clen = (size_t)(nul2 - cid), plen = (size_t)(end - pw);
    if (memchr(pw, '\0', plen) != NULL || zlen > SASL_FIELD_MAX || has_control(cid, clen))
        return -1;
    if (zlen != 0 && (zlen != clen || memcmp(msg, cid, clen) != 0))
        return -1; /* proxy authorization is not supported */
    if (copy_field(cid, clen, authcid, authsz) < 0 || copy_field(pw, plen, passwd, pwsz) < 0) {
        clear_out(authcid, authsz, passwd, pwsz);
        return -1;
    }
    return 0;
}

/* sasl_login_field - check and copy one decoded AUTH LOGIN field; 0 or -1 */
int sasl_login_field(const unsigned char *msg, size_t len, int is_user, char *out, size_t outsz)
{
    if (out != NULL && outsz > 0)
        memset(out, 0, outsz);
    if (msg == NULL || out == NULL || memchr(msg, '\0', len) != NULL)
        return -1;
    if (is_user && has_control(msg, len))
        return -1;
    return copy_field(msg, len, out, outsz);
}
