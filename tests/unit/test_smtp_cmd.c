/* test_smtp_cmd.c - command lexing, MAIL/RCPT parameters and BDAT arguments */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "smtp_cmd.h"

#define NOARGS ((const char *)1) /* args must be NULL */
#define ANY ((const char *)2)    /* args not checked */

struct lex_case {
    const char *line;
    enum smtp_verb verb;
    const char *args;
};

static const struct lex_case lex_cases[] = {
    {"HELO x.example", CMD_HELO, "x.example"},
    {"helo x.example", CMD_HELO, "x.example"},
    {"HELO .", CMD_HELO, "."},
    {"EHLO 192.168.0.81", CMD_EHLO, "192.168.0.81"},
    {"eHlO a", CMD_EHLO, "a"},
    {"EHLO", CMD_EHLO, ""},
    {"HELO  x", CMD_HELO, " x"},
    {"EHLO ", CMD_EHLO, ""},
    {"DATA", CMD_DATA, ""},
    {"data", CMD_DATA, ""},
    {"DATA x", CMD_DATA, "x"},
    {"BDAT 10 LAST", CMD_BDAT, "10 LAST"},
    {"RSET", CMD_RSET, ""},
    {"NOOP", CMD_NOOP, ""},
    {"NOOP hello", CMD_NOOP, "hello"},
    {"HELP", CMD_HELP, ""},
    {"HELP MAIL", CMD_HELP, "MAIL"},
    {"VRFY user", CMD_VRFY, "user"},
    {"EXPN list", CMD_EXPN, "list"},
    {"QUIT", CMD_QUIT, ""},
    {"quit", CMD_QUIT, ""},
    {"STARTTLS", CMD_STARTTLS, ""},
    {"starttls", CMD_STARTTLS, ""},
    {"AUTH PLAIN AGEAYg==", CMD_AUTH, "PLAIN AGEAYg=="},
    {"auth login", CMD_AUTH, "login"},
    /* MAIL / RCPT keywords */
    {"MAIL FROM:<a@b.example>", CMD_MAIL, "<a@b.example>"},
    {"mail from:<a@b.example>", CMD_MAIL, "<a@b.example>"},
    {"Mail From:<a@b.example> SIZE=10", CMD_MAIL, "<a@b.example> SIZE=10"},
    {"MAIL FROM: <a@b.example>", CMD_MAIL, " <a@b.example>"},
    {"MAIL FROM:a@b.example", CMD_MAIL, "a@b.example"},
    {"MAIL FROM:", CMD_MAIL, ""},
    {"MAIL FROM:<>", CMD_MAIL, "<>"},
    {"MAIL FROM <a@b.example>", CMD_MAIL, NOARGS},
    {"MAIL FROM :<a@b.example>", CMD_MAIL, NOARGS},
    {"MAIL TO:<a@b.example>", CMD_MAIL, NOARGS},
    {"MAIL  FROM:<a@b.example>", CMD_MAIL, NOARGS},
    {"MAIL", CMD_MAIL, NOARGS},
    {"MAIL ", CMD_MAIL, NOARGS},
    {"MAIL FROM", CMD_MAIL, NOARGS},
    {"MAIL FRO", CMD_MAIL, NOARGS},
    {"RCPT TO:<a@b.example>", CMD_RCPT, "<a@b.example>"},
    {"rcpt to:<a@b.example>", CMD_RCPT, "<a@b.example>"},
    {"RCPT TO: <a@b.example> NOTIFY=NEVER", CMD_RCPT, " <a@b.example> NOTIFY=NEVER"},
    {"RCPT TO:", CMD_RCPT, ""},
    {"RCPT TO <a@b.example>", CMD_RCPT, NOARGS},
    {"RCPT TO :<a@b.example>", CMD_RCPT, NOARGS},
    {"RCPT FROM:<a@b.example>", CMD_RCPT, NOARGS},
    {"RCPT", CMD_RCPT, NOARGS},
    {"RCPT T", CMD_RCPT, NOARGS},
    /* not SMTP verbs */
    {"MAILFROM:<a@b.example>", CMD_UNKNOWN, ANY},
    {"MAILFROM:", CMD_UNKNOWN, ANY},
    {"RECPT TO:<a@b.example>", CMD_UNKNOWN, ANY},
    {"RCPTTO:<a@b.example>", CMD_UNKNOWN, ANY},
    {"QUITX", CMD_UNKNOWN, ANY},
    {"DATAX", CMD_UNKNOWN, ANY},
    {"HEL", CMD_UNKNOWN, ANY},
    {"", CMD_UNKNOWN, ANY},
    {" HELO x", CMD_UNKNOWN, ANY},
    {"HELO\tx", CMD_UNKNOWN, ANY},
    {"STARTTLSX", CMD_UNKNOWN, ANY},
    {"TURN", CMD_UNKNOWN, ANY},
    {"ETRN x", CMD_UNKNOWN, ANY},
    {"XCLIENT ADDR=1.2.3.4", CMD_UNKNOWN, ANY},
    {"GETX /", CMD_UNKNOWN, ANY},
    {"Host:example.com", CMD_UNKNOWN, ANY},
    {":", CMD_UNKNOWN, ANY},
    {": x", CMD_UNKNOWN, ANY},
    {"\xc3\xa9HLO x", CMD_UNKNOWN, ANY},
    /* another protocol */
    {"GET / HTTP/1.1", CMD_HTTP, ANY},
    {"get / HTTP/1.0", CMD_HTTP, ANY},
    {"POST /login HTTP/1.1", CMD_HTTP, ANY},
    {"HEAD / HTTP/1.1", CMD_HTTP, ANY},
    {"PUT /x HTTP/1.1", CMD_HTTP, ANY},
    {"CONNECT mail.example:25 HTTP/1.1", CMD_HTTP, ANY},
    {"OPTIONS * HTTP/1.1", CMD_HTTP, ANY},
    {"DELETE /x HTTP/1.1", CMD_HTTP, ANY},
    {"User-Agent: curl/8.5.0", CMD_HTTP, ANY},
    {"Host: mail.example", CMD_HTTP, ANY},
    {"Accept: */*", CMD_HTTP, ANY},
    {"X-Forwarded-For: 1.2.3.4", CMD_HTTP, ANY},
    {"Content-Length: 0", CMD_HTTP, ANY},
};

static void test_lex_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(lex_cases) / sizeof(lex_cases[0]); i++) {
        const struct lex_case *c = &lex_cases[i];
        size_t n = strlen(c->line);
        char *buf = malloc(n + 1);
        const char *args = ANY;
        assert_non_null(buf);
        memcpy(buf, c->line, n + 1);
        enum smtp_verb v = smtp_cmd_lex(buf, &args);
        if (v != c->verb)
            print_error("line \"%s\": verb %d, want %d\n", c->line, v, c->verb);
        assert_int_equal(v, c->verb);
        if (c->args == NOARGS) {
            assert_null(args);
        } else if (c->args != ANY) {
            assert_true(args >= buf && args <= buf + n);
            assert_string_equal(args, c->args);
        }
        free(buf);
    }
}

static void test_lex_null_args(void **state)
{
    (void)state;
    assert_int_equal(smtp_cmd_lex("QUIT", NULL), CMD_QUIT);
    assert_int_equal(smtp_cmd_lex("MAIL FROM:<a@b>", NULL), CMD_MAIL);
}

struct mail_case {
    const char *in;
    enum param_status st;
    const char *bad;
    long long size;
    enum body_type body;
    int smtputf8;
    enum dsn_ret ret;
    const char *envid;
};

#define MOK(in, size, body, utf8, ret, envid) {in, PARAM_OK, "", size, body, utf8, ret, envid}
#define MBAD(in, st, bad) {in, st, bad, 0, 0, 0, 0, NULL}

static const struct mail_case mail_cases[] = {
    MOK("", -1, BODY_NONE, 0, RET_NONE, ""),
    MOK("   ", -1, BODY_NONE, 0, RET_NONE, ""),
    MOK(" SIZE=1000", 1000, BODY_NONE, 0, RET_NONE, ""),
    MOK("size=0", 0, BODY_NONE, 0, RET_NONE, ""),
    MOK("SIZE=9223372036854775807", 9223372036854775807LL, BODY_NONE, 0, RET_NONE, ""),
    MOK("SIZE=00000000000000000001", 1, BODY_NONE, 0, RET_NONE, ""),
    MOK("BODY=8BITMIME", -1, BODY_8BITMIME, 0, RET_NONE, ""),
    MOK("body=7bit", -1, BODY_7BIT, 0, RET_NONE, ""),
    MOK("Body=8bitMime", -1, BODY_8BITMIME, 0, RET_NONE, ""),
    MOK("SMTPUTF8", -1, BODY_NONE, 1, RET_NONE, ""),
    MOK("smtputf8", -1, BODY_NONE, 1, RET_NONE, ""),
    MOK("RET=FULL", -1, BODY_NONE, 0, RET_FULL, ""),
    MOK("ret=hdrs", -1, BODY_NONE, 0, RET_HDRS, ""),
    MOK("ENVID=QQ314159", -1, BODY_NONE, 0, RET_NONE, "QQ314159"),
    MOK("ENVID=a+2Bb+3Dc", -1, BODY_NONE, 0, RET_NONE, "a+b=c"),
    MOK("AUTH=<>", -1, BODY_NONE, 0, RET_NONE, ""),
    MOK("AUTH=user+40example.com", -1, BODY_NONE, 0, RET_NONE, ""),
    MOK("auth=e+3Dmc2@example.com", -1, BODY_NONE, 0, RET_NONE, ""),
    MOK("SIZE=10 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=abc AUTH=<>", 10, BODY_8BITMIME, 1, RET_HDRS, "abc"),
    MOK("  SIZE=10   BODY=7BIT  SMTPUTF8  ", 10, BODY_7BIT, 1, RET_NONE, ""),
    /* SIZE */
    MBAD("SIZE=9223372036854775808", PARAM_BAD_VALUE, "SIZE"),
    MBAD("SIZE=12345678901234567890", PARAM_BAD_VALUE, "SIZE"),
    MBAD("SIZE=000000000000000000001", PARAM_BAD_VALUE, "SIZE"), /* 21 digits */
    MBAD("SIZE=99999999999999999999999999", PARAM_BAD_VALUE, "SIZE"),
    MBAD("SIZE=", PARAM_BAD_VALUE, "SIZE"),
    MBAD("SIZE", PARAM_BAD_VALUE, "SIZE"),
    MBAD("SIZE=-1", PARAM_BAD_VALUE, "SIZE"),
    MBAD("SIZE=+1", PARAM_BAD_VALUE, "SIZE"),
    MBAD("SIZE=1x", PARAM_BAD_VALUE, "SIZE"),
    MBAD("SIZE=0x10", PARAM_BAD_VALUE, "SIZE"),
    MBAD("SIZE=1=2", PARAM_BAD_VALUE, "SIZE"),
    MBAD("SIZE==1", PARAM_BAD_VALUE, "SIZE"),
    MBAD("SIZE=10\tBODY=7BIT", PARAM_BAD_VALUE, "SIZE"),
    /* BODY */
    MBAD("BODY=BINARYMIME", PARAM_BAD_VALUE, "BODY"),
    MBAD("BODY=8BIT", PARAM_BAD_VALUE, "BODY"),
    MBAD("BODY=", PARAM_BAD_VALUE, "BODY"),
    MBAD("BODY", PARAM_BAD_VALUE, "BODY"),
    /* SMTPUTF8 takes no value */
    MBAD("SMTPUTF8=yes", PARAM_BAD_VALUE, "SMTPUTF8"),
    MBAD("SMTPUTF8=", PARAM_BAD_VALUE, "SMTPUTF8"),
    /* RET */
    MBAD("RET=NONE", PARAM_BAD_VALUE, "RET"),
    MBAD("RET=", PARAM_BAD_VALUE, "RET"),
    MBAD("RET", PARAM_BAD_VALUE, "RET"),
    /* ENVID */
    MBAD("ENVID=", PARAM_BAD_VALUE, "ENVID"),
    MBAD("ENVID", PARAM_BAD_VALUE, "ENVID"),
    MBAD("ENVID=a+0Db", PARAM_BAD_VALUE, "ENVID"),
    MBAD("ENVID=+0A", PARAM_BAD_VALUE, "ENVID"),
    MBAD("ENVID=+00", PARAM_BAD_VALUE, "ENVID"),
    MBAD("ENVID=a+2b", PARAM_BAD_VALUE, "ENVID"),
    MBAD("ENVID=a+", PARAM_BAD_VALUE, "ENVID"),
    MBAD("ENVID=\xc3\xa9", PARAM_BAD_VALUE, "ENVID"),
    /* AUTH */
    MBAD("AUTH=", PARAM_BAD_VALUE, "AUTH"),
    MBAD("AUTH", PARAM_BAD_VALUE, "AUTH"),
    MBAD("AUTH=a+0D+0AMAIL", PARAM_BAD_VALUE, "AUTH"),
    MOK("AUTH=<x>", -1, BODY_NONE, 0, RET_NONE, ""), /* "<x>" is well-formed xtext */
    MBAD("AUTH=a+2", PARAM_BAD_VALUE, "AUTH"),
    /* duplicates */
    MBAD("SIZE=1 SIZE=2", PARAM_BAD_VALUE, "SIZE"),
    MBAD("BODY=7BIT body=8BITMIME", PARAM_BAD_VALUE, "body"),
    MBAD("SMTPUTF8 SMTPUTF8", PARAM_BAD_VALUE, "SMTPUTF8"),
    MBAD("RET=FULL RET=FULL", PARAM_BAD_VALUE, "RET"),
    MBAD("ENVID=a ENVID=b", PARAM_BAD_VALUE, "ENVID"),
    MBAD("AUTH=<> AUTH=<>", PARAM_BAD_VALUE, "AUTH"),
    /* unknown keywords */
    MBAD("FOO=bar", PARAM_UNKNOWN, "FOO"),
    MBAD("FOO", PARAM_UNKNOWN, "FOO"),
    MBAD("FOO=", PARAM_UNKNOWN, "FOO"),
    MBAD("X-FOO", PARAM_UNKNOWN, "X-FOO"),
    MBAD("MT-PRIORITY=3", PARAM_UNKNOWN, "MT-PRIORITY"),
    MBAD("BINARYMIME", PARAM_UNKNOWN, "BINARYMIME"),
    MBAD("NOTIFY=NEVER", PARAM_UNKNOWN, "NOTIFY"),
    MBAD("SIZE=10 FOO", PARAM_UNKNOWN, "FOO"),
    MBAD("SIZE2=10", PARAM_UNKNOWN, "SIZE2"),
    MBAD("SIZ=10", PARAM_UNKNOWN, "SIZ"),
    /* malformed keywords */
    MBAD("=x", PARAM_BAD_VALUE, "=x"),
    MBAD("=", PARAM_BAD_VALUE, "="),
    MBAD("-A=1", PARAM_BAD_VALUE, "-A"),
    MBAD("A_B=1", PARAM_BAD_VALUE, "A_B"),
    MBAD("<a@b>", PARAM_BAD_VALUE, "<a@b>"),
    MBAD(">", PARAM_BAD_VALUE, ">"),
    MBAD("SIZE\r=1", PARAM_BAD_VALUE, "SIZE?"),
};

/* check_mail_ok - parsed fields match the row */
static void check_mail_ok(const struct mail_case *c, const struct mail_params *p)
{
    assert_true(p->size == c->size);
    assert_int_equal(p->body, c->body);
    assert_int_equal(p->smtputf8, c->smtputf8);
    assert_int_equal(p->ret, c->ret);
    assert_string_equal(p->envid, c->envid);
}

static void test_mail_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(mail_cases) / sizeof(mail_cases[0]); i++) {
        const struct mail_case *c = &mail_cases[i];
        struct mail_params p;
        char bad[32] = "junk";
        enum param_status st = smtp_mail_params(c->in, &p, bad, sizeof(bad));
        if (st != c->st)
            print_error("MAIL params \"%s\": got %d want %d\n", c->in, st, c->st);
        assert_int_equal(st, c->st);
        assert_string_equal(bad, c->bad);
        if (st == PARAM_OK)
            check_mail_ok(c, &p);
    }
}

static void test_mail_envid_length(void **state)
{
    char line[400], bad[16];
    struct mail_params p;
    (void)state;

    strcpy(line, "ENVID=");
    memset(line + 6, 'e', 100);
    line[106] = '\0';
    assert_int_equal(smtp_mail_params(line, &p, bad, sizeof(bad)), PARAM_OK);
    assert_int_equal(strlen(p.envid), 100);
    strcat(line, "e");
    assert_int_equal(smtp_mail_params(line, &p, bad, sizeof(bad)), PARAM_BAD_VALUE);
    assert_string_equal(bad, "ENVID");
    /* 100 characters decoded from 300 encoded */
    strcpy(line, "ENVID=");
    for (int i = 0; i < 100; i++)
        strcat(line, "+41");
    assert_int_equal(smtp_mail_params(line, &p, bad, sizeof(bad)), PARAM_OK);
    assert_int_equal(strlen(p.envid), 100);
    strcat(line, "+41");
    assert_int_equal(smtp_mail_params(line, &p, bad, sizeof(bad)), PARAM_BAD_VALUE);
}

static void test_badbuf_sizes(void **state)
{
    struct mail_params p;
    struct rcpt_params r;
    char bad[4];
    (void)state;

    assert_int_equal(smtp_mail_params("VERYLONGKEY=1", &p, bad, sizeof(bad)), PARAM_UNKNOWN);
    assert_string_equal(bad, "VER");
    assert_int_equal(smtp_mail_params("VERYLONGKEY=1", &p, bad, 1), PARAM_UNKNOWN);
    assert_string_equal(bad, "");
    assert_int_equal(smtp_mail_params("VERYLONGKEY=1", &p, NULL, 0), PARAM_UNKNOWN);
    assert_int_equal(smtp_rcpt_params("VERYLONGKEY=1", &r, bad, sizeof(bad)), PARAM_UNKNOWN);
    assert_string_equal(bad, "VER");
    assert_int_equal(smtp_rcpt_params("X", &r, NULL, 0), PARAM_UNKNOWN);
    bad[0] = 'x';
    assert_int_equal(smtp_mail_params("SIZE=1", &p, bad, sizeof(bad)), PARAM_OK);
    assert_string_equal(bad, "");
}

struct rcpt_case {
    const char *in;
    enum param_status st;
    const char *bad;
    int notify;
    const char *type, *orcpt;
};

#define ROK(in, notify, type, orcpt) {in, PARAM_OK, "", notify, type, orcpt}
#define RBAD(in, st, bad) {in, st, bad, 0, NULL, NULL}

static const struct rcpt_case rcpt_cases[] = {
    ROK("", 0, "", ""),
    ROK("NOTIFY=NEVER", NOTIFY_NEVER, "", ""),
    ROK("notify=never", NOTIFY_NEVER, "", ""),
    ROK("NOTIFY=SUCCESS", NOTIFY_SUCCESS, "", ""),
    ROK("NOTIFY=SUCCESS,FAILURE", NOTIFY_SUCCESS | NOTIFY_FAILURE, "", ""),
    ROK("notify=delay,Success,FAILURE", NOTIFY_SUCCESS | NOTIFY_FAILURE | NOTIFY_DELAY, "", ""),
    ROK("ORCPT=rfc822;user@example.com", 0, "rfc822", "user@example.com"),
    ROK("ORCPT=RFC822;a+2Bb@x.example", 0, "rfc822", "a+b@x.example"),
    ROK("ORCPT=utf-8;user@example.com", 0, "utf-8", "user@example.com"),
    ROK("ORCPT=UTF-8;j+C3+B6@example.com", 0, "utf-8", "j\xc3\xb6@example.com"),
    ROK("ORCPT=rfc822;a;b", 0, "rfc822", "a;b"),
    ROK("  NOTIFY=FAILURE,DELAY   ORCPT=rfc822;a@b.example  ", NOTIFY_FAILURE | NOTIFY_DELAY, "rfc822",
        "a@b.example"),
    /* NOTIFY */
    RBAD("NOTIFY=NEVER,SUCCESS", PARAM_BAD_VALUE, "NOTIFY"),
    RBAD("NOTIFY=FAILURE,NEVER", PARAM_BAD_VALUE, "NOTIFY"),
    RBAD("NOTIFY=NEVER,NEVER", PARAM_BAD_VALUE, "NOTIFY"),
    RBAD("NOTIFY=SUCCESS,SUCCESS", PARAM_BAD_VALUE, "NOTIFY"),
    RBAD("NOTIFY=SUCCESS,success", PARAM_BAD_VALUE, "NOTIFY"),
    RBAD("NOTIFY=", PARAM_BAD_VALUE, "NOTIFY"),
    RBAD("NOTIFY", PARAM_BAD_VALUE, "NOTIFY"),
    RBAD("NOTIFY=SUCCESS,", PARAM_BAD_VALUE, "NOTIFY"),
    RBAD("NOTIFY=,SUCCESS", PARAM_BAD_VALUE, "NOTIFY"),
    RBAD("NOTIFY=SUCCESS,,FAILURE", PARAM_BAD_VALUE, "NOTIFY"),
    RBAD("NOTIFY=SUCESS", PARAM_BAD_VALUE, "NOTIFY"),
    RBAD("NOTIFY=ALWAYS", PARAM_BAD_VALUE, "NOTIFY"),
    RBAD("NOTIFY=SUCCESS;FAILURE", PARAM_BAD_VALUE, "NOTIFY"),
    /* ORCPT */
    RBAD("ORCPT=x400;foo", PARAM_BAD_VALUE, "ORCPT"),
    RBAD("ORCPT=rfc8222;a@b", PARAM_BAD_VALUE, "ORCPT"),
    RBAD("ORCPT=rfc822;", PARAM_BAD_VALUE, "ORCPT"),
    RBAD("ORCPT=rfc822", PARAM_BAD_VALUE, "ORCPT"),
    RBAD("ORCPT=;a@b", PARAM_BAD_VALUE, "ORCPT"),
    RBAD("ORCPT=", PARAM_BAD_VALUE, "ORCPT"),
    RBAD("ORCPT", PARAM_BAD_VALUE, "ORCPT"),
    RBAD("ORCPT=rfc822;a+0D+0Ab", PARAM_BAD_VALUE, "ORCPT"),
    RBAD("ORCPT=rfc822;a+00b", PARAM_BAD_VALUE, "ORCPT"),
    RBAD("ORCPT=rfc822;a+2b", PARAM_BAD_VALUE, "ORCPT"),
    RBAD("ORCPT=rfc822;a+", PARAM_BAD_VALUE, "ORCPT"),
    RBAD("ORCPT=rfc822;j\xc3\xb6@example.com", PARAM_BAD_VALUE, "ORCPT"),
    RBAD("ORCPT=rfc822;a=b", PARAM_BAD_VALUE, "ORCPT"),
    /* duplicates and unknown */
    RBAD("ORCPT=rfc822;a@b ORCPT=rfc822;c@d", PARAM_BAD_VALUE, "ORCPT"),
    RBAD("NOTIFY=NEVER NOTIFY=NEVER", PARAM_BAD_VALUE, "NOTIFY"),
    RBAD("NOTIFY=NEVER notify=SUCCESS", PARAM_BAD_VALUE, "notify"),
    RBAD("FOO", PARAM_UNKNOWN, "FOO"),
    RBAD("SIZE=1", PARAM_UNKNOWN, "SIZE"),
    RBAD("NOTIFY=NEVER BAR=1", PARAM_UNKNOWN, "BAR"),
    RBAD("=NEVER", PARAM_BAD_VALUE, "=NEVER"),
};

static void test_rcpt_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rcpt_cases) / sizeof(rcpt_cases[0]); i++) {
        const struct rcpt_case *c = &rcpt_cases[i];
        struct rcpt_params p;
        char bad[32] = "junk";
        enum param_status st = smtp_rcpt_params(c->in, &p, bad, sizeof(bad));
        if (st != c->st)
            print_error("RCPT params \"%s\": got %d want %d\n", c->in, st, c->st);
        assert_int_equal(st, c->st);
        assert_string_equal(bad, c->bad);
        if (st != PARAM_OK)
            continue;
        assert_int_equal(p.notify, c->notify);
        assert_string_equal(p.orcpt_type, c->type);
        assert_string_equal(p.orcpt, c->orcpt);
    }
}

static void test_rcpt_orcpt_length(void **state)
{
    static char line[2000];
    struct rcpt_params p;
    char bad[16];
    (void)state;

    strcpy(line, "ORCPT=rfc822;");
    size_t n = strlen(line);
    memset(line + n, 'o', 512);
    line[n + 512] = '\0';
    assert_int_equal(smtp_rcpt_params(line, &p, bad, sizeof(bad)), PARAM_OK);
    assert_int_equal(strlen(p.orcpt), 512);
    strcat(line, "o");
    assert_int_equal(smtp_rcpt_params(line, &p, bad, sizeof(bad)), PARAM_BAD_VALUE);
    assert_string_equal(bad, "ORCPT");
}

struct bdat_case {
    const char *in;
    int ret;
    unsigned long long size;
    int last;
};

static const struct bdat_case bdat_cases[] = {
    {"10", 0, 10, 0},
    {"10 LAST", 0, 10, 1},
    {"10 last", 0, 10, 1},
    {"10 LaSt", 0, 10, 1},
    {"0", 0, 0, 0},
    {"0 LAST", 0, 0, 1},
    {"007", 0, 7, 0},
    {"  10   LAST  ", 0, 10, 1},
    {"10 ", 0, 10, 0},
    {"9007199254740992", 0, 9007199254740992ULL, 0},
    {"9007199254740992 LAST", 0, 9007199254740992ULL, 1},
    {"9007199254740993", -1, 0, 0},
    {"18446744073709551616", -1, 0, 0},
    {"99999999999999999999999999999999", -1, 0, 0},
    {"", -1, 0, 0},
    {"   ", -1, 0, 0},
    {"LAST", -1, 0, 0},
    {"10LAST", -1, 0, 0},
    {"10 LAST x", -1, 0, 0},
    {"10 LASTX", -1, 0, 0},
    {"10 LAS", -1, 0, 0},
    {"10 LAST LAST", -1, 0, 0},
    {"-1", -1, 0, 0},
    {"+1", -1, 0, 0},
    {"1 0", -1, 0, 0},
    {"10\tLAST", -1, 0, 0},
    {"0x10", -1, 0, 0},
    {"1e3", -1, 0, 0},
    {"10 FIRST", -1, 0, 0},
};

static void test_bdat_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bdat_cases) / sizeof(bdat_cases[0]); i++) {
        const struct bdat_case *c = &bdat_cases[i];
        unsigned long long size = 12345;
        int last = 7;
        int r = smtp_bdat_args(c->in, &size, &last);
        if (r != c->ret)
            print_error("BDAT \"%s\": got %d want %d\n", c->in, r, c->ret);
        assert_int_equal(r, c->ret);
        if (r == 0) {
            assert_true(size == c->size);
            assert_int_equal(last, c->last);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lex_table),
        cmocka_unit_test(test_lex_null_args),
        cmocka_unit_test(test_mail_table),
        cmocka_unit_test(test_mail_envid_length),
        cmocka_unit_test(test_badbuf_sizes),
        cmocka_unit_test(test_rcpt_table),
        cmocka_unit_test(test_rcpt_orcpt_length),
        cmocka_unit_test(test_bdat_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
