/* test_smtpc_reply.c - client-side reply parser (bounds, truncation, codes) and EHLO keywords */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "smtpc_reply.h"

struct reply_case {
    const char *in;
    size_t inlen;           /* 0: strlen(in) */
    enum smtpc_parse want;
    int code;
    const char *esc;
    const char *text;
    size_t lines;
    int bare_lf;
    size_t used;            /* 0: whole input */
};

#define L(s) s, sizeof(s) - 1

static const struct reply_case cases[] = {
    /* single and multi-line */
    {L("250 OK\r\n"), SMTPC_DONE, 250, "", "OK", 1, 0, 0},
    {L("220 mx.example.net ESMTP\r\n"), SMTPC_DONE, 220, "", "mx.example.net ESMTP", 1, 0, 0},
    {L("250-first\r\n250-second\r\n250 last\r\n"), SMTPC_DONE, 250, "", "first\nsecond\nlast", 3, 0, 0},
    {L("250-\r\n250 x\r\n"), SMTPC_DONE, 250, "", "\nx", 2, 0, 0},         /* empty continuation */
    {L("250-\r\n"), SMTPC_MORE, 0, NULL, NULL, 0, 0, 0},                   /* CVE-2020-8794 */
    {L("250\r\n"), SMTPC_DONE, 250, "", "", 1, 0, 0},                      /* final, no text */
    {L("250-a\r\n250\r\n"), SMTPC_DONE, 250, "", "a\n", 2, 0, 0},
    {L("250 \r\n"), SMTPC_DONE, 250, "", "", 1, 0, 0},
    /* bare LF */
    {L("250 OK\n"), SMTPC_DONE, 250, "", "OK", 1, 1, 0},
    {L("250-a\n250 b\r\n"), SMTPC_DONE, 250, "", "a\nb", 2, 1, 0},
    {L("250-a\r\n250 b\n"), SMTPC_DONE, 250, "", "a\nb", 2, 1, 0},
    {L("250 a\rb\r\n"), SMTPC_DONE, 250, "", "a\rb", 1, 0, 0},              /* inner CR is text */
    /* incomplete */
    {L(""), SMTPC_MORE, 0, NULL, NULL, 0, 0, 0},
    {L("25"), SMTPC_MORE, 0, NULL, NULL, 0, 0, 0},
    {L("250"), SMTPC_MORE, 0, NULL, NULL, 0, 0, 0},
    {L("250 OK"), SMTPC_MORE, 0, NULL, NULL, 0, 0, 0},
    {L("250 OK\r"), SMTPC_MORE, 0, NULL, NULL, 0, 0, 0},
    {L("250\r"), SMTPC_MORE, 0, NULL, NULL, 0, 0, 0},
    {L("250\rx"), SMTPC_ERROR, 0, NULL, NULL, 0, 0, 0},
    {L("250\rx\r\n"), SMTPC_ERROR, 0, NULL, NULL, 0, 0, 0},
    {L("250-a\r\n250"), SMTPC_MORE, 0, NULL, NULL, 0, 0, 0},
    {L("250-a\r\n25"), SMTPC_MORE, 0, NULL, NULL, 0, 0, 0},
    /* mismatched codes, already visible in a partial line */
    {L("250-a\r\n251 b\r\n"), SMTPC_ERROR, 0, NULL, NULL, 0, 0, 0},
    {L("250-a\r\n550 b\r\n"), SMTPC_ERROR, 0, NULL, NULL, 0, 0, 0},
    {L("250-a\r\n24"), SMTPC_ERROR, 0, NULL, NULL, 0, 0, 0},
    {L("250-a\r\n251"), SMTPC_ERROR, 0, NULL, NULL, 0, 0, 0},
    /* bad separators and codes */
    {L("250_OK\r\n"), SMTPC_ERROR, 0, NULL, NULL, 0, 0, 0},
    {L("250\tOK\r\n"), SMTPC_ERROR, 0, NULL, NULL, 0, 0, 0},
    {L("250x"), SMTPC_ERROR, 0, NULL, NULL, 0, 0, 0},
    {L("2a0 OK\r\n"), SMTPC_ERROR, 0, NULL, NULL, 0, 0, 0},
    {L("25\r\n"), SMTPC_ERROR, 0, NULL, NULL, 0, 0, 0},
    {L("\r\n"), SMTPC_ERROR, 0, NULL, NULL, 0, 0, 0},
    {L("\n"), SMTPC_ERROR, 0, NULL, NULL, 0, 0, 0},
    {L(" 250 OK\r\n"), SMTPC_ERROR, 0, NULL, NULL, 0, 0, 0},
    {L("199 x\r\n"), SMTPC_ERROR, 0, NULL, NULL, 0, 0, 0},
    {L("600 x\r\n"), SMTPC_ERROR, 0, NULL, NULL, 0, 0, 0},
    {L("1"), SMTPC_ERROR, 0, NULL, NULL, 0, 0, 0},
    {L("6"), SMTPC_ERROR, 0, NULL, NULL, 0, 0, 0},
    {L("099 x\r\n"), SMTPC_ERROR, 0, NULL, NULL, 0, 0, 0},
    {L("200 lo\r\n"), SMTPC_DONE, 200, "", "lo", 1, 0, 0},
    {L("599 hi\r\n"), SMTPC_DONE, 599, "", "hi", 1, 0, 0},
    /* NUL bytes */
    {L("250 O\0K\r\n"), SMTPC_ERROR, 0, NULL, NULL, 0, 0, 0},
    {L("250 O\0"), SMTPC_ERROR, 0, NULL, NULL, 0, 0, 0},
    {L("25\0"), SMTPC_ERROR, 0, NULL, NULL, 0, 0, 0},
    {L("250-a\r\n250 \0\r\n"), SMTPC_ERROR, 0, NULL, NULL, 0, 0, 0},
    /* enhanced status codes */
    {L("250 2.1.0 Ok\r\n"), SMTPC_DONE, 250, "2.1.0", "Ok", 1, 0, 0},
    {L("550 5.1.1 <u@x>: no such user\r\n"), SMTPC_DONE, 550, "5.1.1", "<u@x>: no such user", 1, 0, 0},
    {L("250 2.0.0\r\n"), SMTPC_DONE, 250, "2.0.0", "", 1, 0, 0},
    {L("451 4.123.999 later\r\n"), SMTPC_DONE, 451, "4.123.999", "later", 1, 0, 0},
    {L("250 5.0.0 x\r\n"), SMTPC_DONE, 250, "", "5.0.0 x", 1, 0, 0},       /* class mismatch */
    {L("550 2.0.0 x\r\n"), SMTPC_DONE, 550, "", "2.0.0 x", 1, 0, 0},
    {L("250 3.0.0 x\r\n"), SMTPC_DONE, 250, "", "3.0.0 x", 1, 0, 0},
    {L("250 2.1234.0 x\r\n"), SMTPC_DONE, 250, "", "2.1234.0 x", 1, 0, 0},
    {L("250 2.1.0000 x\r\n"), SMTPC_DONE, 250, "", "2.1.0000 x", 1, 0, 0},
    {L("250 2..0 x\r\n"), SMTPC_DONE, 250, "", "2..0 x", 1, 0, 0},
    {L("250 2.1. x\r\n"), SMTPC_DONE, 250, "", "2.1. x", 1, 0, 0},
    {L("250 2.1.0x y\r\n"), SMTPC_DONE, 250, "", "2.1.0x y", 1, 0, 0},
    {L("250 2.1\r\n"), SMTPC_DONE, 250, "", "2.1", 1, 0, 0},
    {L("250-2.1.0 a\r\n250 2.1.0 b\r\n"), SMTPC_DONE, 250, "2.1.0", "a\n2.1.0 b", 2, 0, 0},
    {L("250 x 2.1.0 y\r\n"), SMTPC_DONE, 250, "", "x 2.1.0 y", 1, 0, 0},
    /* trailing data: only the first reply is used */
    {L("250 a\r\n354 go\r\n"), SMTPC_DONE, 250, "", "a", 1, 0, 7},
    {L("250-a\r\n250 b\r\n550 c"), SMTPC_DONE, 250, "", "a\nb", 2, 0, 14},
    {L("250 a\r\n\0garbage"), SMTPC_DONE, 250, "", "a", 1, 0, 7},
};

/* run_case - parse one table entry and compare every field */
static void run_case(const struct reply_case *c, size_t idx)
{
    struct smtpc_reply r;
    size_t used = 12345;
    size_t len = c->inlen;
    char *copy = malloc(len ? len : 1); /* exact-size heap copy: ASan sees any overread */
    memcpy(copy, c->in, len);
    enum smtpc_parse got = smtpc_reply_parse(copy, len, &r, &used);
    if (got != c->want)
        fail_msg("case %zu: got %d want %d", idx, got, c->want);
    if (got == SMTPC_DONE) {
        assert_int_equal(r.code, c->code);
        assert_string_equal(r.esc, c->esc);
        assert_string_equal(r.text, c->text);
        assert_int_equal(r.lines, c->lines);
        assert_int_equal(r.bare_lf, c->bare_lf);
        assert_int_equal(used, c->used ? c->used : len);
    } else {
        assert_int_equal(used, 0);
    }
    free(copy);
}

static void test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        run_case(&cases[i], i);
}

/* prefixes_more - every proper prefix of a valid reply is SMTPC_MORE, the whole is DONE */
static void prefixes_more(const char *in, size_t len)
{
    struct smtpc_reply r;
    size_t used;
    for (size_t n = 0; n < len; n++) {
        char *p = malloc(n ? n : 1);
        memcpy(p, in, n);
        if (smtpc_reply_parse(p, n, &r, &used) != SMTPC_MORE)
            fail_msg("prefix %zu of \"%s\" not MORE", n, in);
        assert_int_equal(used, 0);
        free(p);
    }
    assert_int_equal(smtpc_reply_parse(in, len, &r, &used), SMTPC_DONE);
    assert_int_equal(used, len);
}

static void test_all_prefixes(void **state)
{
    (void)state;
    static const char *valid[] = {
        "250 OK\r\n",
        "250\r\n",
        "250-\r\n250\r\n",
        "250-mx.example.net\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 8BITMIME\r\n",
        "550 5.1.1 no such user\n",
        "250-a\n250-\n250 2.0.0 b\r\n",
    };
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
        prefixes_more(valid[i], strlen(valid[i]));
}

/* repeat_line - a reply of n lines, each "250-" + k 'x' (the last "250 ") */
static void repeat_lines(struct buf *b, size_t n, size_t k)
{
    for (size_t i = 0; i < n; i++) {
        buf_puts(b, i + 1 == n ? "250 " : "250-");
        for (size_t j = 0; j < k; j++)
            buf_putc(b, 'x');
        buf_puts(b, "\r\n");
    }
}

static void test_long_lines(void **state)
{
    (void)state;
    struct smtpc_reply r;
    size_t used;
    struct buf b = BUF_INIT;
    repeat_lines(&b, 1, SMTPC_LINE_MAX - 4); /* exactly SMTPC_LINE_MAX octets */
    assert_int_equal(smtpc_reply_parse(b.data, b.len, &r, &used), SMTPC_DONE);
    assert_int_equal(strlen(r.text), SMTPC_LINE_MAX - 4);
    assert_int_equal(smtpc_reply_parse(b.data, b.len - 1, &r, &used), SMTPC_MORE); /* ends in CR */
    assert_int_equal(smtpc_reply_parse(b.data, b.len - 2, &r, &used), SMTPC_MORE);
    buf_reset(&b);
    repeat_lines(&b, 1, SMTPC_LINE_MAX - 3); /* one octet too long */
    assert_int_equal(smtpc_reply_parse(b.data, b.len, &r, &used), SMTPC_ERROR);
    assert_int_equal(smtpc_reply_parse(b.data, b.len - 1, &r, &used), SMTPC_ERROR); /* known early */
    buf_reset(&b);
    buf_puts(&b, "250 ");
    for (int i = 0; i < 100000; i++) /* never ends: must not wait forever */
        buf_putc(&b, 'y');
    assert_int_equal(smtpc_reply_parse(b.data, b.len, &r, &used), SMTPC_ERROR);
    buf_free(&b);
}

static void test_text_truncated(void **state)
{
    (void)state;
    struct smtpc_reply r;
    size_t used;
    struct buf b = BUF_INIT;
    repeat_lines(&b, 5, 3000); /* 15000 octets of text into a 4096 buffer */
    assert_int_equal(smtpc_reply_parse(b.data, b.len, &r, &used), SMTPC_DONE);
    assert_int_equal(r.lines, 5);
    assert_int_equal(strlen(r.text), sizeof(r.text) - 1);
    assert_int_equal(used, b.len);
    buf_free(&b);
}

static void test_many_lines(void **state)
{
    (void)state;
    struct smtpc_reply r;
    size_t used;
    struct buf b = BUF_INIT;
    repeat_lines(&b, SMTPC_LINES_MAX, 2);
    assert_int_equal(smtpc_reply_parse(b.data, b.len, &r, &used), SMTPC_DONE);
    assert_int_equal(r.lines, SMTPC_LINES_MAX);
    buf_reset(&b);
    repeat_lines(&b, SMTPC_LINES_MAX + 1, 2);
    assert_int_equal(smtpc_reply_parse(b.data, b.len, &r, &used), SMTPC_ERROR);
    buf_reset(&b);
    for (int i = 0; i < SMTPC_LINES_MAX; i++)
        buf_puts(&b, "250-\r\n");
    assert_int_equal(smtpc_reply_parse(b.data, b.len, &r, &used), SMTPC_ERROR);
    buf_free(&b);
}

static void test_pipelined(void **state)
{
    (void)state;
    static const char in[] = "250 2.1.0 Ok\r\n250-2.1.5 a\r\n250 b\n554 5.5.1 no\r\n354 End\r\n250";
    static const int codes[] = {250, 250, 554, 354};
    static const char *escs[] = {"2.1.0", "2.1.5", "5.5.1", ""};
    struct smtpc_reply r;
    size_t used, pos = 0, len = sizeof(in) - 1;
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(smtpc_reply_parse(in + pos, len - pos, &r, &used), SMTPC_DONE);
        assert_int_equal(r.code, codes[i]);
        assert_string_equal(r.esc, escs[i]);
        assert_true(used > 0 && used <= len - pos);
        pos += used;
    }
    assert_int_equal(smtpc_reply_parse(in + pos, len - pos, &r, &used), SMTPC_MORE);
    assert_int_equal(pos, len - 3);
    static const char in2[] = "250 a\r\n250-b\r\n250 c\r\n550 d\r\n25";
    const char *texts[] = {"a", "b\nc", "d"};
    pos = 0, len = sizeof(in2) - 1;
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(smtpc_reply_parse(in2 + pos, len - pos, &r, &used), SMTPC_DONE);
        assert_string_equal(r.text, texts[i]);
        pos += used;
    }
    assert_int_equal(smtpc_reply_parse(in2 + pos, len - pos, &r, &used), SMTPC_MORE);
    assert_int_equal(pos, len - 2);
}

/* ehlo - parse text as a reply, then its EHLO keywords */
static void ehlo(const char *text, struct smtpc_ext *ext)
{
    struct smtpc_reply r;
    size_t used;
    assert_int_equal(smtpc_reply_parse(text, strlen(text), &r, &used), SMTPC_DONE);
    smtpc_ehlo_parse(&r, ext);
}

struct ehlo_case {
    const char *in;
    unsigned flags;
    unsigned long long size;
    int plain, login;
};

static const struct ehlo_case ehlo_cases[] = {
    {"250-mx.example.net\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
     "250-DSN\r\n250-CHUNKING\r\n250-STARTTLS\r\n250-AUTH PLAIN LOGIN\r\n250 ENHANCEDSTATUSCODES\r\n",
     0x1ff, 10240000, 1, 1},
    {"250 mx.example.net\r\n", 0, 0, 0, 0},
    {"250-mx\r\n250 SIZE\r\n", SMTPC_EXT_SIZE, 0, 0, 0},
    {"250-mx\r\n250 SIZE 0\r\n", SMTPC_EXT_SIZE, 0, 0, 0},
    {"250-mx\r\n250 SIZE 18446744073709551615\r\n", SMTPC_EXT_SIZE, 18446744073709551615ull, 0, 0},
    {"250-mx\r\n250 SIZE 18446744073709551616\r\n", SMTPC_EXT_SIZE, 0, 0, 0},
    {"250-mx\r\n250 SIZE 99999999999999999999999999999\r\n", SMTPC_EXT_SIZE, 0, 0, 0},
    {"250-mx\r\n250 SIZE 12abc\r\n", SMTPC_EXT_SIZE, 0, 0, 0},
    {"250-mx\r\n250 SIZE -5\r\n", SMTPC_EXT_SIZE, 0, 0, 0},
    {"250-mx\r\n250 SIZE  52428800 \r\n", SMTPC_EXT_SIZE, 52428800, 0, 0},
    {"250-mx\r\n250-AUTH=PLAIN LOGIN\r\n250 AUTH CRAM-MD5\r\n", SMTPC_EXT_AUTH, 0, 1, 1},
    {"250-mx\r\n250 AUTH=LOGIN\r\n", SMTPC_EXT_AUTH, 0, 0, 1},
    {"250-mx\r\n250 AUTH GSSAPI PLAIN\r\n", SMTPC_EXT_AUTH, 0, 1, 0},
    {"250-mx\r\n250 AUTH\r\n", SMTPC_EXT_AUTH, 0, 0, 0},
    {"250-mx\r\n250-pipelining\r\n250-size 100\r\n250-starttls\r\n250 auth plain\r\n",
     SMTPC_EXT_PIPELINING | SMTPC_EXT_SIZE | SMTPC_EXT_STARTTLS | SMTPC_EXT_AUTH, 100, 1, 0},
    {"250-mx\r\n250-PIPELININGX\r\n250-XSIZE 5\r\n250-SIZE=5\r\n250 X-EXPS GSSAPI\r\n", 0, 0, 0, 0},
    {"250-mx PIPELINING\r\n250 \r\n", 0, 0, 0, 0}, /* the greeting line names no keyword */
    {"250-mx\r\n250-\r\n250 DSN\r\n", SMTPC_EXT_DSN, 0, 0, 0},
    {"550 5.7.1 go away\r\n", 0, 0, 0, 0},
};

static void test_ehlo(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(ehlo_cases) / sizeof(ehlo_cases[0]); i++) {
        struct smtpc_ext ext;
        memset(&ext, 0xa5, sizeof(ext));
        ehlo(ehlo_cases[i].in, &ext);
        if (ext.flags != ehlo_cases[i].flags)
            fail_msg("ehlo case %zu: flags %#x want %#x", i, ext.flags, ehlo_cases[i].flags);
        assert_true(ext.size == ehlo_cases[i].size);
        assert_int_equal(ext.auth_plain, ehlo_cases[i].plain);
        assert_int_equal(ext.auth_login, ehlo_cases[i].login);
    }
}

static void test_ehlo_unterminated_text(void **state)
{
    (void)state;
    struct smtpc_reply r;
    struct smtpc_ext ext;
    memset(&r, 'A', sizeof(r)); /* no NUL in text at all: must stay within it */
    r.code = 250;
    memcpy(r.text, "mx\nSIZE 7\nDSN", 13);
    smtpc_ehlo_parse(&r, &ext);
    assert_true(ext.flags & SMTPC_EXT_SIZE);
    assert_true(ext.size == 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),         cmocka_unit_test(test_all_prefixes),
        cmocka_unit_test(test_long_lines),    cmocka_unit_test(test_text_truncated),
        cmocka_unit_test(test_many_lines),    cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_ehlo),          cmocka_unit_test(test_ehlo_unterminated_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
