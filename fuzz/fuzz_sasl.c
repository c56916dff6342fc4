/* fuzz_sasl.c - libFuzzer target: strict base64, SASL PLAIN and LOGIN decoding
 *
 * Besides letting the sanitizers look for memory errors, it aborts when a
 * result breaks an invariant: accepted base64 re-encodes to the same text
 * (so decoding is canonical), the decoded length fits exactly, and parsed
 * fields hold no NUL, fit SASL_FIELD_MAX and (user names) no control byte.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sasl.h"

/* check - abort (reported by libFuzzer as a crash) when an invariant fails */
static void check(int ok)
{
    if (!ok)
        abort();
}

/* no_controls - s has no control byte */
static void no_controls(const char *s)
{
    for (; *s; s++)
        check((unsigned char)*s >= 0x20 && *s != 0x7f);
}

/* check_b64 - decode; when accepted, re-encoding gives back the input */
static void check_b64(const uint8_t *data, size_t size)
{
    unsigned char out[SASL_LINE_MAX];
    char enc[SASL_LINE_MAX + 8];
    const char *in = (const char *)data;
    long n = sasl_b64_decode(in, size, out, sizeof(out));
    if (n < 0)
        return;
    check((size_t)n <= size && (size_t)n <= sizeof(out));
    if (size == 1 && in[0] == '=') {
        check(n == 0);
        return;
    }
    long e = sasl_b64_encode(out, (size_t)n, enc, sizeof(enc));
    check(e >= 0 && (size_t)e == size && memcmp(enc, in, size) == 0 && enc[e] == '\0');
    check(sasl_b64_decode(in, size, out, (size_t)n) == n); /* exactly full fits */
    if (n > 0)
        check(sasl_b64_decode(in, size, out, (size_t)n - 1) == -1); /* one short does not */
}

/* check_plain - accepted: the message is exactly [authcid] NUL authcid NUL passwd */
static void check_plain(const unsigned char *msg, size_t len)
{
    char cid[SASL_FIELD_MAX + 1], pw[SASL_FIELD_MAX + 1];
    if (sasl_plain_parse(msg, len, cid, sizeof(cid), pw, sizeof(pw)) < 0) {
        check(cid[0] == '\0' && pw[0] == '\0');
        return;
    }
    size_t cl = strlen(cid), pl = strlen(pw);
    check(cl > 0 && cl <= SASL_FIELD_MAX && pl > 0 && pl <= SASL_FIELD_MAX);
    no_controls(cid);
    check(len == cl + 1 + cl + 1 + pl || len == 1 + cl + 1 + pl);
    size_t z = len - (cl + 1 + pl) - 1; /* authzid length: 0 or cl */
    check(msg[z] == '\0' && msg[z + 1 + cl] == '\0');
    check(memcmp(msg + z + 1, cid, cl) == 0 && memcmp(msg + z + 2 + cl, pw, pl) == 0);
    check(z == 0 || memcmp(msg, cid, cl) == 0);
}

/* check_login - accepted: the field is the whole message, no NUL, bounded */
static void check_login(const unsigned char *msg, size_t len, int is_user)
{
    char out[SASL_FIELD_MAX + 1];
    if (sasl_login_field(msg, len, is_user, out, sizeof(out)) < 0)
        return;
    check(strlen(out) == len && len > 0 && len <= SASL_FIELD_MAX);
    check(memcmp(out, msg, len) == 0);
    if (is_user)
        no_controls(out);
}

/* check_message - every decoder over one decoded message */
static void check_message(const unsigned char *msg, size_t len)
{
    check_plain(msg, len);
    check_login(msg, len, 1);
    check_login(msg, len, 0);
}

/* LLVMFuzzerTestOneInput - one input: as base64, as a decoded message, and decoded */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char dec[SASL_LINE_MAX];
    if (size > SASL_LINE_MAX)
        return 0;
    check_b64(data, size);
    check_message(data, size); /* the raw bytes as a decoded message */
    long n = sasl_b64_decode((const char *)data, size, dec, sizeof(dec));
    if (n >= 0)
        check_message(dec, (size_t)n); /* the path smtpd takes */
    return 0;
}
