/* test_xtext.c - RFC 3461 xtext decoding, encoding and round trips */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "addr.h"

struct dec_case {
    const char *in;
    size_t inlen;
    long ret;        /* expected length, -1 for malformed */
    const char *out; /* expected decoded text when ret >= 0 */
};

#define DEC(in, ret, out) {in, sizeof(in) - 1, ret, out}

static const struct dec_case dec_cases[] = {
    DEC("", 0, ""),
    DEC("abc", 3, "abc"),
    DEC("user@example.com", 16, "user@example.com"),
    DEC("+2B", 1, "+"),
    DEC("+3D", 1, "="),
    DEC("a+3Db", 3, "a=b"),
    DEC("+20", 1, " "),
    DEC("+41+42+43", 3, "ABC"),
    DEC("+C3+A9", 2, "\xc3\xa9"),
    DEC("+FF", 1, "\xff"),
    DEC("+7E", 1, "~"),
    DEC("!~", 2, "!~"),
    DEC("QQ314159", 8, "QQ314159"),
    DEC("<>", 2, "<>"),
    DEC("a;b,c:d", 7, "a;b,c:d"),
    /* malformed */
    DEC("+2b", -1, NULL),   /* lowercase hex is not hexchar */
    DEC("+c3+a9", -1, NULL),
    DEC("+", -1, NULL),
    DEC("+2", -1, NULL),
    DEC("a+", -1, NULL),
    DEC("a+4", -1, NULL),
    DEC("+G0", -1, NULL),
    DEC("+0G", -1, NULL),
    DEC("+ 2B", -1, NULL),
    DEC("++2B", -1, NULL),
    DEC("+-1", -1, NULL),
    DEC("a=b", -1, NULL),   /* '=' must be encoded */
    DEC("=", -1, NULL),
    DEC("a b", -1, NULL),   /* space is not an xchar */
    DEC("a\tb", -1, NULL),
    DEC("a\r\nb", -1, NULL),
    DEC("\x7f", -1, NULL),
    DEC("\x80", -1, NULL),
    DEC("\xc3\xa9", -1, NULL),
    DEC("a\0b", -1, NULL),  /* NUL inside the span */
    /* decoded controls are refused: no CR, LF or NUL may ever come out */
    DEC("+0D", -1, NULL),
    DEC("+0A", -1, NULL),
    DEC("a+0D+0Ab", -1, NULL),
    DEC("+00", -1, NULL),
    DEC("+1F", -1, NULL),
    DEC("+09", -1, NULL),
    DEC("+7F", -1, NULL),
    DEC("+1B", -1, NULL),
};

static void test_decode_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(dec_cases) / sizeof(dec_cases[0]); i++) {
        const struct dec_case *c = &dec_cases[i];
        char out[64];
        memset(out, 'Z', sizeof(out));
        long r = xtext_decode(c->in, c->inlen, out, sizeof(out));
        if (r != c->ret)
            print_error("decode case %zu \"%s\": got %ld want %ld\n", i, c->in, r, c->ret);
        assert_int_equal(r, c->ret);
        assert_int_equal(xtext_valid(c->in, c->inlen), c->ret >= 0);
        if (r >= 0) {
            assert_int_equal(strlen(out), (size_t)r);
            assert_memory_equal(out, c->out, (size_t)r + 1);
        }
    }
}

static void test_decode_sizes(void **state)
{
    char out[8];
    (void)state;

    assert_int_equal(xtext_decode("abc", 3, out, 4), 3);
    assert_string_equal(out, "abc");
    assert_int_equal(xtext_decode("abc", 3, out, 3), -1); /* no room for the NUL */
    assert_int_equal(xtext_decode("abc", 3, out, 1), -1);
    assert_int_equal(xtext_decode("abc", 3, out, 0), -1);
    assert_int_equal(xtext_decode("", 0, out, 1), 0);
    assert_string_equal(out, "");
    assert_int_equal(xtext_decode("", 0, out, 0), -1);
    assert_int_equal(xtext_decode("+41+42", 6, out, 3), 2); /* encoded input longer than output */
    assert_string_equal(out, "AB");
    assert_int_equal(xtext_decode("+41+42", 6, out, 2), -1);
    /* only inlen bytes are looked at */
    assert_int_equal(xtext_decode("ab+2B", 2, out, sizeof(out)), 2);
    assert_int_equal(xtext_decode("ab+2B", 4, out, sizeof(out)), -1);
}

struct enc_case {
    const char *in;
    size_t inlen;
    const char *out;
};

#define ENC(in, out) {in, sizeof(in) - 1, out}

static const struct enc_case enc_cases[] = {
    ENC("", ""),
    ENC("abc", "abc"),
    ENC("a+b=c d", "a+2Bb+3Dc+20d"),
    ENC("\r\n", "+0D+0A"),
    ENC("\xc3\xa9", "+C3+A9"),
    ENC("~!", "~!"),
    ENC("\x7f", "+7F"),
    ENC("\xff", "+FF"),
    ENC("a\0b", "a+00b"),
    ENC("user@example.com", "user@example.com"),
    ENC("\"a b\"@c", "\"a+20b\"@c"),
    ENC("+", "+2B"),
    ENC("=", "+3D"),
};

static void test_encode_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(enc_cases) / sizeof(enc_cases[0]); i++) {
        char out[64];
        long r = xtext_encode(enc_cases[i].in, enc_cases[i].inlen, out, sizeof(out));
        assert_int_equal(r, (long)strlen(enc_cases[i].out));
        assert_string_equal(out, enc_cases[i].out);
    }
}

static void test_encode_sizes(void **state)
{
    char out[16];
    (void)state;

    assert_int_equal(xtext_encode("abc", 3, out, 4), 3);
    assert_int_equal(xtext_encode("abc", 3, out, 3), -1);
    assert_int_equal(xtext_encode("a+", 2, out, 5), 4);
    assert_string_equal(out, "a+2B");
    assert_int_equal(xtext_encode("a+", 2, out, 4), -1); /* the +HH would not fit with its NUL */
    assert_int_equal(xtext_encode("a+", 2, out, 3), -1);
    assert_int_equal(xtext_encode("", 0, out, 1), 0);
    assert_int_equal(xtext_encode("", 0, out, 0), -1);
}

/* every single byte: encoding is uppercase +HH or the xchar itself; decoding refuses controls */
static void test_all_bytes(void **state)
{
    (void)state;
    for (int c = 0; c < 256; c++) {
        char in = (char)c, enc[8], dec[8];
        long n = xtext_encode(&in, 1, enc, sizeof(enc));
        int xchar = c >= '!' && c <= '~' && c != '+' && c != '=';
        assert_int_equal(n, xchar ? 1 : 3);
        long d = xtext_decode(enc, (size_t)n, dec, sizeof(dec));
        if (c < 0x20 || c == 0x7f) {
            assert_int_equal(d, -1);
            continue;
        }
        assert_int_equal(d, 1);
        assert_int_equal((unsigned char)dec[0], c);
    }
}

/* longer round trip: printable ASCII, space, '+', '=' and 8-bit bytes */
static void test_round_trip(void **state)
{
    char in[300], enc[1000], dec[301];
    size_t n = 0;
    (void)state;

    for (int c = 0x20; c < 0x7f; c++)
        in[n++] = (char)c;
    for (int c = 0x80; c < 0x100; c++)
        in[n++] = (char)c;
    long e = xtext_encode(in, n, enc, sizeof(enc));
    assert_true(e > 0);
    assert_true(xtext_valid(enc, (size_t)e));
    for (long i = 0; i < e; i++)
        assert_true(enc[i] >= '!' && enc[i] <= '~' && enc[i] != '=');
    long d = xtext_decode(enc, (size_t)e, dec, sizeof(dec));
    assert_int_equal(d, (long)n);
    assert_memory_equal(in, dec, n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_table),
        cmocka_unit_test(test_decode_sizes),
        cmocka_unit_test(test_encode_table),
        cmocka_unit_test(test_encode_sizes),
        cmocka_unit_test(test_all_bytes),
        cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
