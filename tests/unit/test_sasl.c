/* test_sasl.c - strict base64, SASL PLAIN and LOGIN field decoding */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "sasl.h"

/* dec - decode a C string into out (size outsz) */
static long dec(const char *in, unsigned char *out, size_t outsz)
{
    return sasl_b64_decode(in, strlen(in), out, outsz);
}

/* bad - in is not valid base64 */
static void bad(const char *in)
{
    unsigned char out[64];
    if (dec(in, out, sizeof(out)) != -1)
        fail_msg("accepted \"%s\"", in);
}

/* roundtrip - RFC 4648 section 10: plain <-> b64 both ways */
static void roundtrip(const char *plain, const char *b64)
{
    unsigned char out[64];
    char enc[64];
    long n = dec(b64, out, sizeof(out));
    assert_int_equal(n, (long)strlen(plain));
    assert_memory_equal(out, plain, (size_t)n);
    assert_int_equal(sasl_b64_encode((const unsigned char *)plain, strlen(plain), enc, sizeof(enc)),
                     (long)strlen(b64));
    assert_string_equal(enc, b64);
}

/* test_b64_rfc4648_vectors - the RFC 4648 section 10 vectors, both ways */
static void test_b64_rfc4648_vectors(void **state)
{
    (void)state;
    roundtrip("", "");
    roundtrip("f", "Zg==");
    roundtrip("fo", "Zm8=");
    roundtrip("foo", "Zm9v");
    roundtrip("foob", "Zm9vYg==");
    roundtrip("fooba", "Zm9vYmE=");
    roundtrip("foobar", "Zm9vYmFy");
}

/* test_b64_all_bytes - every byte value survives a round trip; only the standard alphabet */
static void test_b64_all_bytes(void **state)
{
    (void)state;
    unsigned char in[256], out[256];
    char enc[400];
    for (int i = 0; i < 256; i++)
        in[i] = (unsigned char)i;
    long e = sasl_b64_encode(in, sizeof(in), enc, sizeof(enc));
    assert_int_equal(e, 344);
    assert_int_equal(strlen(enc), 344);
    assert_int_equal(sasl_b64_decode(enc, (size_t)e, out, sizeof(out)), 256);
    assert_memory_equal(in, out, 256);
    /* + and / are in the alphabet; - and _ (base64url) are not */
    unsigned char x[3];
    assert_int_equal(dec("+/+/", x, sizeof(x)), 3);
    assert_int_equal(x[0], 0xfb);
    assert_int_equal(x[1], 0xff);
    assert_int_equal(x[2], 0xbf);
    bad("-_-_");
}

/* test_b64_empty_response - "=" alone is the empty string; other lone padding is not */
static void test_b64_empty_response(void **state)
{
    (void)state;
    unsigned char out[4];
    assert_int_equal(dec("=", out, sizeof(out)), 0); /* RFC 4954 section 4 */
    assert_int_equal(dec("=", out, 0), 0);
    assert_int_equal(sasl_b64_decode("", 0, out, 0), 0);
    bad("==");
    bad("===");
    bad("====");
    bad("=A");
}

/* test_b64_padding_errors - missing, short, extra, misplaced padding; set pad bits */
static void test_b64_padding_errors(void **state)
{
    (void)state;
    bad("Zg");       /* missing padding */
    bad("Zg=");      /* short padding */
    bad("Zm8");      /* missing padding */
    bad("Zg===");    /* too much */
    bad("Z===");     /* one character is not a byte */
    bad("Zm=v");     /* '=' inside a group */
    bad("=m9v");
    bad("Z=9v");
    bad("Zh==");     /* pad bits set: not canonical */
    bad("Zm9=");     /* pad bits set */
    bad("Zg==Zg=="); /* data after padding */
    bad("Zm8=Zm9v");
    bad("Zg==\r\n");
    bad("Zg==A");
    bad("A");
    bad("AB");
    bad("ABCDE");
}

/* test_b64_outside_alphabet - characters outside the alphabet, NUL included */
static void test_b64_outside_alphabet(void **state)
{
    (void)state;
    bad("Zm9*");
    bad("Zm9.");
    bad("Zm9\x80");
    bad("Zm9\xff");
    bad("Zm9v\x01mFy");
    unsigned char out[8];
    assert_int_equal(sasl_b64_decode("Zm\0v", 4, out, sizeof(out)), -1); /* NUL */
}

/* test_b64_white_space - no white space anywhere, not even a trailing CRLF */
static void test_b64_white_space(void **state)
{
    (void)state;
    bad(" Zm9v");
    bad("Zm9v ");
    bad("Zm 9v");
    bad("Zm9v\n");
    bad("Zm9v\r\n");
    bad("Zm9\tv");
    bad("Zm9v\r\nYmFy");
}

/* test_b64_decode_buffer - an output buffer exactly full works, one byte short fails */
static void test_b64_decode_buffer(void **state)
{
    (void)state;
    unsigned char out[8];
    memset(out, 0xAA, sizeof(out));
    assert_int_equal(dec("Zm9vYmFy", out, 6), 6); /* exactly full */
    assert_memory_equal(out, "foobar", 6);
    assert_int_equal(out[6], 0xAA); /* nothing written past outsz */
    assert_int_equal(dec("Zm9vYmFy", out, 5), -1); /* one short */
    assert_int_equal(dec("Zm9vYmE=", out, 5), 5);
    assert_int_equal(dec("Zm9vYmE=", out, 4), -1);
    assert_int_equal(dec("Zg==", out, 1), 1);
    assert_int_equal(dec("Zg==", out, 0), -1);
}

/* test_b64_encode_buffer - encoding needs room for the text and its NUL */
static void test_b64_encode_buffer(void **state)
{
    (void)state;
    char enc[16];
    const unsigned char *in = (const unsigned char *)"foobar";
    assert_int_equal(sasl_b64_encode(in, 6, enc, 9), 8); /* 8 + NUL: exactly full */
    assert_string_equal(enc, "Zm9vYmFy");
    assert_int_equal(sasl_b64_encode(in, 6, enc, 8), -1); /* no room for the NUL */
    assert_int_equal(sasl_b64_encode(in, 1, enc, 5), 4);
    assert_string_equal(enc, "Zg==");
    assert_int_equal(sasl_b64_encode(in, 1, enc, 4), -1);
    assert_int_equal(sasl_b64_encode(in, 0, enc, 1), 0);
    assert_string_equal(enc, "");
    assert_int_equal(sasl_b64_encode(in, 0, enc, 0), -1);
}

/* test_b64_long_input - a line near SASL_LINE_MAX decodes, and a stray "=" in it fails */
static void test_b64_long_input(void **state)
{
    (void)state;
    size_t n = 9000; /* a SASL_LINE_MAX (12288) line carries 9216 bytes */
    unsigned char *in = malloc(n), *out = malloc(n);
    char *enc = malloc(SASL_LINE_MAX + 1);
    assert_non_null(in);
    assert_non_null(out);
    assert_non_null(enc);
    for (size_t i = 0; i < n; i++)
        in[i] = (unsigned char)(i * 7 + 3);
    long e = sasl_b64_encode(in, n, enc, SASL_LINE_MAX + 1);
    assert_int_equal(e, 12000);
    assert_int_equal(sasl_b64_decode(enc, (size_t)e, out, n), (long)n);
    assert_memory_equal(in, out, n);
    assert_int_equal(sasl_b64_decode(enc, (size_t)e, out, n - 1), -1);
    enc[6000] = '='; /* padding in the middle of a long line */
    assert_int_equal(sasl_b64_decode(enc, (size_t)e, out, n), -1);
    free(in);
    free(out);
    free(enc);
}

/* plain - parse a PLAIN message of len bytes; returns the result */
static int plain(const char *msg, size_t len, char *cid, char *pw)
{
    return sasl_plain_parse((const unsigned char *)msg, len, cid, SASL_FIELD_MAX + 1, pw,
                            SASL_FIELD_MAX + 1);
}

/* plain_ok - msg parses to cid and pw */
static void plain_ok(const char *msg, size_t len, const char *want_cid, const char *want_pw)
{
    char cid[SASL_FIELD_MAX + 1], pw[SASL_FIELD_MAX + 1];
    assert_int_equal(plain(msg, len, cid, pw), 0);
    assert_string_equal(cid, want_cid);
    assert_string_equal(pw, want_pw);
}

/* plain_bad - msg is refused and the output buffers are left empty */
static void plain_bad(const char *msg, size_t len)
{
    char cid[SASL_FIELD_MAX + 1], pw[SASL_FIELD_MAX + 1];
    memset(cid, 'x', sizeof(cid));
    memset(pw, 'x', sizeof(pw));
    assert_int_equal(plain(msg, len, cid, pw), -1);
    assert_string_equal(cid, "");
    assert_string_equal(pw, "");
}

/* test_plain_basic - well-formed PLAIN messages */
static void test_plain_basic(void **state)
{
    (void)state;
    plain_ok("\0alice\0secret", 13, "alice", "secret");
    plain_ok("alice\0alice\0secret", 18, "alice", "secret"); /* authzid == authcid */
    plain_ok("\0alice\0pass word\t\x01\xc3\xa9", 20, "alice", "pass word\t\x01\xc3\xa9");
    plain_ok("\0j\xc3\xb6rg@example.org\0x", 20, "j\xc3\xb6rg@example.org", "x");
}

/* test_plain_nul_count - exactly two NULs: 0, 1, 3 or more in every position are refused */
static void test_plain_nul_count(void **state)
{
    (void)state;
    /* no NUL at all */
    plain_bad("alicesecret", 11);
    /* one NUL, in every position */
    plain_bad("\0alicesecret", 12);
    plain_bad("alice\0secret", 12);
    plain_bad("alicesecret\0", 12);
    /* two NULs at the edges */
    plain_bad("\0\0alicesecret", 13);
    plain_bad("alicesecret\0\0", 13);
    plain_bad("\0alicesecret\0", 13);
    /* three NULs, in every arrangement */
    plain_bad("\0alice\0secret\0", 14);
    plain_bad("\0alice\0sec\0ret", 14);
    plain_bad("\0al\0ice\0secret", 14);
    plain_bad("alice\0alice\0secret\0", 19);
    plain_bad("\0\0\0", 3);
    plain_bad("\0\0alice\0secret", 14);
    plain_bad("\0alice\0\0secret", 14);
    plain_bad("", 0);
}

/* test_plain_empty_fields - empty authcid or password refused */
static void test_plain_empty_fields(void **state)
{
    (void)state;
    plain_bad("\0\0secret", 8);         /* empty authcid */
    plain_bad("\0alice\0", 7);          /* empty password */
    plain_bad("\0\0", 2);               /* both */
    plain_bad("alice\0\0secret", 13);   /* authzid only */
    plain_bad("alice\0alice\0", 12);    /* authzid and authcid, no password */
}

/* test_plain_authzid - an authzid other than authcid (proxy authorization) is refused */
static void test_plain_authzid(void **state)
{
    (void)state;
    plain_bad("bob\0alice\0secret", 16);   /* proxy authorization */
    plain_bad("Alice\0alice\0secret", 18); /* exact comparison */
    plain_bad("alice2\0alice\0secret", 19);
    plain_bad("alic\0alice\0secret", 17);
}

/* test_plain_controls - control bytes in authcid refused */
static void test_plain_controls(void **state)
{
    (void)state;
    plain_bad("\0ali\x01" "ce\0secret", 14);
    plain_bad("\0alice\r\n\0secret", 15);
    plain_bad("\0alice\x7f\0secret", 14);
    plain_bad("\0\talice\0secret", 14);
}

/* field_msg - "\0" + cidlen x 'u' + "\0" + pwlen x 'p' (+ optional authzid), in buf */
static size_t field_msg(char *buf, size_t cidlen, size_t pwlen, size_t zlen)
{
    size_t n = 0;
    memset(buf + n, 'u', zlen);
    n += zlen;
    buf[n++] = '\0';
    memset(buf + n, 'u', cidlen);
    n += cidlen;
    buf[n++] = '\0';
    memset(buf + n, 'p', pwlen);
    return n + pwlen;
}

/* test_plain_lengths - fields of 255 bytes accepted, 256 refused; small buffers refused */
static void test_plain_lengths(void **state)
{
    (void)state;
    char msg[1024], cid[SASL_FIELD_MAX + 1], pw[SASL_FIELD_MAX + 1];
    size_t n = field_msg(msg, 255, 255, 255);
    assert_int_equal(plain(msg, n, cid, pw), 0);
    assert_int_equal(strlen(cid), 255);
    assert_int_equal(strlen(pw), 255);
    plain_bad(msg, field_msg(msg, 256, 10, 0));
    plain_bad(msg, field_msg(msg, 10, 256, 0));
    plain_bad(msg, field_msg(msg, 256, 10, 256));
    /* caller buffers too small: refused, not truncated */
    n = field_msg(msg, 10, 10, 0);
    assert_int_equal(sasl_plain_parse((unsigned char *)msg, n, cid, 10, pw, sizeof(pw)), -1);
    assert_int_equal(sasl_plain_parse((unsigned char *)msg, n, cid, 11, pw, 10), -1);
    assert_int_equal(sasl_plain_parse((unsigned char *)msg, n, cid, 11, pw, 11), 0);
}

/* login - sasl_login_field on len bytes of msg */
static int login(const char *msg, size_t len, int is_user, char *out)
{
    return sasl_login_field((const unsigned char *)msg, len, is_user, out, SASL_FIELD_MAX + 1);
}

/* test_login_fields - LOGIN fields: NUL anywhere, control bytes in user names */
static void test_login_fields(void **state)
{
    (void)state;
    char out[SASL_FIELD_MAX + 1];
    assert_int_equal(login("alice", 5, 1, out), 0);
    assert_string_equal(out, "alice");
    assert_int_equal(login("p\tss \x01", 6, 0, out), 0); /* passwords may hold controls */
    assert_string_equal(out, "p\tss \x01");
    assert_int_equal(login("", 0, 1, out), -1);
    assert_string_equal(out, "");
    assert_int_equal(login("", 0, 0, out), -1);
    /* NUL anywhere */
    assert_int_equal(login("\0alice", 6, 1, out), -1);
    assert_int_equal(login("ali\0ce", 6, 1, out), -1);
    assert_int_equal(login("alice\0", 6, 1, out), -1);
    assert_int_equal(login("sec\0ret", 7, 0, out), -1);
    assert_int_equal(login("\0", 1, 0, out), -1);
    /* control bytes in user names */
    assert_int_equal(login("ali\x01" "ce", 6, 1, out), -1);
    assert_int_equal(login("alice\r\n", 7, 1, out), -1);
    assert_int_equal(login("alice\x7f", 6, 1, out), -1);
    assert_int_equal(login("\x1b[31m", 5, 1, out), -1);
    assert_int_equal(login("j\xc3\xb6rg", 5, 1, out), 0); /* UTF-8 is fine */
}

/* test_login_lengths - LOGIN fields of 255 bytes accepted, 256 refused */
static void test_login_lengths(void **state)
{
    (void)state;
    char msg[300], out[SASL_FIELD_MAX + 1];
    memset(msg, 'a', sizeof(msg));
    assert_int_equal(login(msg, 255, 1, out), 0);
    assert_int_equal(strlen(out), 255);
    assert_int_equal(login(msg, 256, 1, out), -1);
    assert_int_equal(login(msg, 256, 0, out), -1);
    assert_int_equal(sasl_login_field((unsigned char *)msg, 10, 1, out, 10), -1);
    assert_int_equal(sasl_login_field((unsigned char *)msg, 10, 1, out, 11), 0);
}

/* test_plain_from_base64 - the path smtpd takes: AUTH PLAIN base64 */
static void test_plain_from_base64(void **state)
{
    (void)state;
    unsigned char msg[SASL_LINE_MAX];
    char cid[SASL_FIELD_MAX + 1], pw[SASL_FIELD_MAX + 1];
    long n = dec("AGFsaWNlAHNlY3JldA==", msg, sizeof(msg)); /* \0alice\0secret */
    assert_int_equal(n, 13);
    assert_int_equal(sasl_plain_parse(msg, (size_t)n, cid, sizeof(cid), pw, sizeof(pw)), 0);
    assert_string_equal(cid, "alice");
    assert_string_equal(pw, "secret");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64_rfc4648_vectors),
        cmocka_unit_test(test_b64_all_bytes),
        cmocka_unit_test(test_b64_empty_response),
        cmocka_unit_test(test_b64_padding_errors),
        cmocka_unit_test(test_b64_outside_alphabet),
        cmocka_unit_test(test_b64_white_space),
        cmocka_unit_test(test_b64_decode_buffer),
        cmocka_unit_test(test_b64_encode_buffer),
        cmocka_unit_test(test_b64_long_input),
        cmocka_unit_test(test_plain_basic),
        cmocka_unit_test(test_plain_nul_count),
        cmocka_unit_test(test_plain_empty_fields),
        cmocka_unit_test(test_plain_authzid),
        cmocka_unit_test(test_plain_controls),
        cmocka_unit_test(test_plain_lengths),
        cmocka_unit_test(test_login_fields),
        cmocka_unit_test(test_login_lengths),
        cmocka_unit_test(test_plain_from_base64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
