/* test_addr.c - addr_parse_path and addr_domain_valid against tables of good and evil paths */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "addr.h"

#define M ADDR_F_MAIL
#define R 0
#define S ADDR_F_STRICT
#define U ADDR_F_UTF8

/* expected attribute bits */
#define BQ 1 /* quoted */
#define BL 2 /* literal */
#define BU 4 /* utf8 */
#define BN 8 /* is_null */

struct path_case {
    const char *in;
    int flags;
    enum addr_status st;
    const char *addr, *local, *domain;
    int bits;
    const char *rest;
};

#define OK(in, fl, a, lo, d, bits, rest) {in, fl, ADDR_OK, a, lo, d, bits, rest}
#define ERR(in, fl, st) {in, fl, st, NULL, NULL, NULL, 0, NULL}

static const struct path_case cases[] = {
    /* plain forms, MAIL and RCPT */
    OK("<a@b.example>", R, "a@b.example", "a", "b.example", 0, ""),
    OK("<a@b.example>", M, "a@b.example", "a", "b.example", 0, ""),
    OK("<a@b.example> SIZE=10", M, "a@b.example", "a", "b.example", 0, " SIZE=10"),
    OK("<a@b.example>  SIZE=10", M, "a@b.example", "a", "b.example", 0, "  SIZE=10"),
    OK("<a@b.example> ", R, "a@b.example", "a", "b.example", 0, " "),
    OK("<First.Last@Sub.B-C.example>", R, "First.Last@Sub.B-C.example", "First.Last", "Sub.B-C.example", 0, ""),
    OK("<a+tag@b.example>", R, "a+tag@b.example", "a+tag", "b.example", 0, ""),
    OK("<!#$%&'*+-/=?^_`{|}~@b.example>", R, "!#$%&'*+-/=?^_`{|}~@b.example", "!#$%&'*+-/=?^_`{|}~",
       "b.example", 0, ""),
    OK("<a@localhost>", R, "a@localhost", "a", "localhost", 0, ""),
    OK("<a@123.example>", R, "a@123.example", "a", "123.example", 0, ""),
    OK("<a@xn--bcher-kva.example>", R, "a@xn--bcher-kva.example", "a", "xn--bcher-kva.example", 0, ""),
    /* leading space: Postfix-style leniency, refused in strict mode */
    OK(" <a@b.example>", M, "a@b.example", "a", "b.example", 0, ""),
    OK("    <a@b.example>", R, "a@b.example", "a", "b.example", 0, ""),
    ERR(" <a@b.example>", M | S, ADDR_ERR_SYNTAX),
    OK("<a@b.example>", M | S, "a@b.example", "a", "b.example", 0, ""),
    /* bare addresses */
    OK("a@b.example", M, "a@b.example", "a", "b.example", 0, ""),
    OK(" a@b.example", R, "a@b.example", "a", "b.example", 0, ""),
    OK("a@b.example SIZE=10", M, "a@b.example", "a", "b.example", 0, " SIZE=10"),
    OK("a@b.example AUTH=<>", M, "a@b.example", "a", "b.example", 0, " AUTH=<>"),
    ERR("a@b.example", M | S, ADDR_ERR_SYNTAX),
    ERR("a@b.example", R | S, ADDR_ERR_SYNTAX),
    ERR("", M, ADDR_ERR_SYNTAX),
    ERR("   ", M, ADDR_ERR_SYNTAX),
    ERR("", M | S, ADDR_ERR_SYNTAX),
    ERR("\"a b\"@b.example", M, ADDR_ERR_SYNTAX), /* bare ends at the first space */
    /* null path */
    OK("<>", M, "", "", "", BN, ""),
    OK(" <>", M, "", "", "", BN, ""),
    OK("<>", M | S, "", "", "", BN, ""),
    OK("<> SIZE=1", M, "", "", "", BN, " SIZE=1"),
    ERR("<>", R, ADDR_ERR_NULL_RCPT),
    ERR("<>", R | S, ADDR_ERR_NULL_RCPT),
    ERR("<>x", M, ADDR_ERR_SYNTAX),
    ERR("<><>", M, ADDR_ERR_SYNTAX),
    ERR("<<>>", M, ADDR_ERR_UNBALANCED),
    /* postmaster */
    OK("<postmaster>", R, "postmaster", "postmaster", "", 0, ""),
    OK("<PostMaster>", R, "PostMaster", "PostMaster", "", 0, ""),
    OK("<postmaster>", R | S, "postmaster", "postmaster", "", 0, ""),
    OK("postmaster", R, "postmaster", "postmaster", "", 0, ""),
    OK("<postmaster@b.example>", M, "postmaster@b.example", "postmaster", "b.example", 0, ""),
    ERR("<postmaster>", M, ADDR_ERR_NO_DOMAIN),
    ERR("<\"postmaster\">", R, ADDR_ERR_NO_DOMAIN),
    ERR("<@a.example:postmaster>", R, ADDR_ERR_NO_DOMAIN),
    ERR("<postmasters>", R, ADDR_ERR_NO_DOMAIN),
    ERR("<postmaster@>", R, ADDR_ERR_NO_DOMAIN),
    /* no domain */
    ERR("<user>", R, ADDR_ERR_NO_DOMAIN),
    ERR("<user>", M, ADDR_ERR_NO_DOMAIN),
    ERR("user", R, ADDR_ERR_NO_DOMAIN),
    ERR("<user@>", R, ADDR_ERR_NO_DOMAIN),
    ERR("<\"user\">", R, ADDR_ERR_NO_DOMAIN),
    ERR("<a b>", R, ADDR_ERR_SYNTAX),
    /* source routes: accepted and dropped */
    OK("<@a.example,@b.example:user@dom.example>", R, "user@dom.example", "user", "dom.example", 0, ""),
    OK("<@a.example:user@dom.example>", M, "user@dom.example", "user", "dom.example", 0, ""),
    OK("<@[192.0.2.1]:user@dom.example>", R, "user@dom.example", "user", "dom.example", 0, ""),
    OK("<@a.example:user@dom.example>", R | S, "user@dom.example", "user", "dom.example", 0, ""),
    OK("@a.example:user@dom.example", R, "user@dom.example", "user", "dom.example", 0, ""),
    ERR("<@a.example:>", R, ADDR_ERR_SYNTAX),
    ERR("<@a.example:>", M, ADDR_ERR_SYNTAX),
    ERR("<@a.example>", R, ADDR_ERR_SYNTAX),
    ERR("<@a.example,@b.example>", R, ADDR_ERR_SYNTAX),
    ERR("<@a.example,user@d.example>", R, ADDR_ERR_SYNTAX),
    ERR("<@a.example,:user@d.example>", R, ADDR_ERR_SYNTAX),
    ERR("<@:user@d.example>", R, ADDR_ERR_DOMAIN),
    ERR("<@a..example:user@d.example>", R, ADDR_ERR_DOMAIN),
    ERR("<@>", R, ADDR_ERR_SYNTAX),
    ERR("<@b.example>", R, ADDR_ERR_SYNTAX),
    ERR("<@a.example:@b.example:u@d.example>", R, ADDR_ERR_SYNTAX),
    /* nmap smtp-open-relay tricks: the domain is always after the last unquoted '@' */
    OK("<user%dom.example@you.example>", R, "user%dom.example@you.example", "user%dom.example", "you.example", 0, ""),
    OK("<dom.example!user@you.example>", R, "dom.example!user@you.example", "dom.example!user", "you.example", 0, ""),
    OK("<@you.example:user@dom.example>", R, "user@dom.example", "user", "dom.example", 0, ""),
    OK("<\"user@dom.example\"@you.example>", R, "\"user@dom.example\"@you.example", "user@dom.example",
       "you.example", BQ, ""),
    OK("<\"user%dom.example\"@you.example>", R, "\"user%dom.example\"@you.example", "user%dom.example",
       "you.example", BQ, ""),
    OK("<user%dom.example@[192.0.2.1]>", R, "user%dom.example@[192.0.2.1]", "user%dom.example", "[192.0.2.1]",
       BL, ""),
    OK("<\"user@dom.example\"@[192.0.2.1]>", R, "\"user@dom.example\"@[192.0.2.1]", "user@dom.example",
       "[192.0.2.1]", BQ | BL, ""),
    ERR("<user@dom.example@you.example>", R, ADDR_ERR_SYNTAX),
    ERR("user@dom.example@you.example", R, ADDR_ERR_SYNTAX),
    ERR("<user%dom.example>", R, ADDR_ERR_NO_DOMAIN),
    ERR("<dom.example!user>", R, ADDR_ERR_NO_DOMAIN),
    ERR("<\"user@dom.example\">", R, ADDR_ERR_NO_DOMAIN),
    ERR("<user@dom.example@>", R, ADDR_ERR_SYNTAX),
    ERR("<@you.example:@dom.example>", R, ADDR_ERR_SYNTAX),
    ERR("<you.example:user@dom.example>", R, ADDR_ERR_SYNTAX),
    /* quoted local parts */
    OK("<\"john doe\"@ex.com>", R, "\"john doe\"@ex.com", "john doe", "ex.com", BQ, ""),
    OK("<\"a\\\"b\"@ex.com>", R, "\"a\\\"b\"@ex.com", "a\"b", "ex.com", BQ, ""),
    OK("<\"a\\\\b\"@ex.com>", R, "\"a\\\\b\"@ex.com", "a\\b", "ex.com", BQ, ""),
    OK("<\"a>b\"@ex.com>", R, "\"a>b\"@ex.com", "a>b", "ex.com", BQ, ""),
    OK("<\"a<b\"@ex.com>", R, "\"a<b\"@ex.com", "a<b", "ex.com", BQ, ""),
    OK("<\"a\\ b\"@ex.com>", R, "\"a\\ b\"@ex.com", "a b", "ex.com", BQ, ""),
    OK("<\"a\\\"@b\"@ex.com>", R, "\"a\\\"@b\"@ex.com", "a\"@b", "ex.com", BQ, ""),
    OK("\"ab\"@ex.com", M, "\"ab\"@ex.com", "ab", "ex.com", BQ, ""),
    ERR("<\"\"@ex.com>", R, ADDR_ERR_SYNTAX),
    ERR("<\"a\"b@ex.com>", R, ADDR_ERR_SYNTAX),
    ERR("<a\"b\"@ex.com>", R, ADDR_ERR_SYNTAX),
    ERR("<\"a\".\"b\"@ex.com>", R, ADDR_ERR_SYNTAX),
    ERR("<\"a@ex.com>", R, ADDR_ERR_UNBALANCED),
    ERR("<\"a\\\"@ex.com>", R, ADDR_ERR_UNBALANCED),
    ERR("\"a@ex.com", R, ADDR_ERR_SYNTAX),
    ERR("<\"a\"@\"ex.com\">", R, ADDR_ERR_DOMAIN),
    /* dot-string rules */
    OK("<a.b.c@ex.com>", R, "a.b.c@ex.com", "a.b.c", "ex.com", 0, ""),
    ERR("<.a@ex.com>", R, ADDR_ERR_SYNTAX),
    ERR("<a.@ex.com>", R, ADDR_ERR_SYNTAX),
    ERR("<a..b@ex.com>", R, ADDR_ERR_SYNTAX),
    ERR("<.@ex.com>", R, ADDR_ERR_SYNTAX),
    ERR("<a b@ex.com>", R, ADDR_ERR_SYNTAX),
    ERR("< a@ex.com>", R, ADDR_ERR_SYNTAX),
    ERR("<a,b@ex.com>", R, ADDR_ERR_SYNTAX),
    ERR("<a(b)@ex.com>", R, ADDR_ERR_SYNTAX),
    ERR("<a\\b@ex.com>", R, ADDR_ERR_SYNTAX),
    ERR("<a[b@ex.com>", R, ADDR_ERR_SYNTAX),
    ERR("<a:b@ex.com>", R, ADDR_ERR_SYNTAX),
    ERR("<a;b@ex.com>", R, ADDR_ERR_SYNTAX),
    /* domains */
    ERR("<a@ex.com.>", R, ADDR_ERR_DOMAIN),
    ERR("<a@.ex.com>", R, ADDR_ERR_DOMAIN),
    ERR("<a@ex..com>", R, ADDR_ERR_DOMAIN),
    ERR("<a@.>", R, ADDR_ERR_DOMAIN),
    ERR("<a@-ex.com>", R, ADDR_ERR_DOMAIN),
    ERR("<a@ex-.com>", R, ADDR_ERR_DOMAIN),
    ERR("<a@ex_ample.com>", R, ADDR_ERR_DOMAIN),
    ERR("<a@ex ample.com>", R, ADDR_ERR_DOMAIN),
    ERR("<a@b.example >", R, ADDR_ERR_DOMAIN),
    ERR("<a@ex.com;rm -rf>", R, ADDR_ERR_DOMAIN),
    ERR("<a@b%c.example>", R, ADDR_ERR_DOMAIN),
    ERR("<a@b!c.example>", R, ADDR_ERR_DOMAIN),
    /* address literals */
    OK("<a@[192.0.2.1]>", R, "a@[192.0.2.1]", "a", "[192.0.2.1]", BL, ""),
    OK("<a@[0.0.0.0]>", R, "a@[0.0.0.0]", "a", "[0.0.0.0]", BL, ""),
    OK("<a@[255.255.255.255]>", M, "a@[255.255.255.255]", "a", "[255.255.255.255]", BL, ""),
    OK("<a@[IPv6:2001:db8::1]>", R, "a@[IPv6:2001:db8::1]", "a", "[IPv6:2001:db8::1]", BL, ""),
    OK("<a@[ipv6:2001:DB8::1]>", R, "a@[ipv6:2001:DB8::1]", "a", "[ipv6:2001:DB8::1]", BL, ""),
    OK("<a@[IPv6:::1]>", R, "a@[IPv6:::1]", "a", "[IPv6:::1]", BL, ""),
    OK("<a@[IPv6:1:2:3:4:5:6:7:8]>", R, "a@[IPv6:1:2:3:4:5:6:7:8]", "a", "[IPv6:1:2:3:4:5:6:7:8]", BL, ""),
    OK("<a@[IPv6:::ffff:192.0.2.1]>", R, "a@[IPv6:::ffff:192.0.2.1]", "a", "[IPv6:::ffff:192.0.2.1]", BL, ""),
    OK("a@[192.0.2.1]", R, "a@[192.0.2.1]", "a", "[192.0.2.1]", BL, ""),
    ERR("<a@[256.0.0.1]>", R, ADDR_ERR_DOMAIN),
    ERR("<a@[1.2.3]>", R, ADDR_ERR_DOMAIN),
    ERR("<a@[1.2.3.4.5]>", R, ADDR_ERR_DOMAIN),
    ERR("<a@[1.2.3.]>", R, ADDR_ERR_DOMAIN),
    ERR("<a@[1..2.3]>", R, ADDR_ERR_DOMAIN),
    ERR("<a@[1234.2.3.4]>", R, ADDR_ERR_DOMAIN),
    ERR("<a@[-1.2.3.4]>", R, ADDR_ERR_DOMAIN),
    ERR("<a@[ 1.2.3.4]>", R, ADDR_ERR_DOMAIN),
    ERR("<a@[1.2.3.4>", R, ADDR_ERR_DOMAIN),
    ERR("<a@1.2.3.4]>", R, ADDR_ERR_DOMAIN),
    ERR("<a@[1.2.3.4]x>", R, ADDR_ERR_DOMAIN),
    ERR("<a@[]>", R, ADDR_ERR_DOMAIN),
    ERR("<a@[IPv6:]>", R, ADDR_ERR_DOMAIN),
    ERR("<a@[IPv6:2001:db8::g]>", R, ADDR_ERR_DOMAIN),
    ERR("<a@[IPv6:1.2.3.4]>", R, ADDR_ERR_DOMAIN),
    ERR("<a@[IPv6:1:2:3:4:5:6:7:8:9]>", R, ADDR_ERR_DOMAIN),
    ERR("<a@[IPv6:fe80::1%eth0]>", R, ADDR_ERR_DOMAIN),
    ERR("<a@[2001:db8::1]>", R, ADDR_ERR_DOMAIN),
    ERR("<a@[x-tag:foo]>", R, ADDR_ERR_DOMAIN),
    ERR("<a@[[192.0.2.1]]>", R, ADDR_ERR_DOMAIN),
    /* brackets */
    ERR("<a@b.example", R, ADDR_ERR_UNBALANCED),
    ERR("<a@b.example", M | S, ADDR_ERR_UNBALANCED),
    ERR("a@b.example>", R, ADDR_ERR_UNBALANCED),
    ERR("a@b.example>", M | S, ADDR_ERR_UNBALANCED),
    ERR(">[[D", R, ADDR_ERR_UNBALANCED),
    ERR(">[[D", M, ADDR_ERR_UNBALANCED),
    ERR(">[[D", R | S, ADDR_ERR_UNBALANCED),
    ERR(" >[[D", R, ADDR_ERR_UNBALANCED),
    ERR("<<a@b.example>>", R, ADDR_ERR_UNBALANCED),
    ERR("<a@b.example>>", R, ADDR_ERR_UNBALANCED),
    ERR("<a@<b.example>", R, ADDR_ERR_UNBALANCED),
    ERR("<a@b.example SIZE=1", M, ADDR_ERR_UNBALANCED),
    ERR("<", R, ADDR_ERR_UNBALANCED),
    ERR(">", R, ADDR_ERR_UNBALANCED),
    ERR("<<", R, ADDR_ERR_UNBALANCED),
    ERR("a<b@c.example", R, ADDR_ERR_UNBALANCED),
    ERR("<a@b.example>x", R, ADDR_ERR_SYNTAX),
    ERR("<a@b.example><c@d.example>", R, ADDR_ERR_SYNTAX),
    ERR("<a@b.example>,<c@d.example>", R, ADDR_ERR_SYNTAX),
    /* control characters anywhere */
    ERR("<a\r@b.example>", R, ADDR_ERR_CTRL),
    ERR("<a@b.example>\r\n", R, ADDR_ERR_CTRL),
    ERR("<a@b.example> SIZE=1\n", M, ADDR_ERR_CTRL),
    ERR("<a\t@b.example>", R, ADDR_ERR_CTRL),
    ERR("\t<a@b.example>", R, ADDR_ERR_CTRL),
    ERR("<a@b.ex\x7f" "ample>", R, ADDR_ERR_CTRL),
    ERR("<\"a\x01\"@b.example>", R, ADDR_ERR_CTRL),
    ERR("<\"a\\\x1b\"@b.example>", R, ADDR_ERR_CTRL),
    ERR("a@b.example\x1b", M, ADDR_ERR_CTRL),
    ERR("<a\n>", M | U, ADDR_ERR_CTRL),
    /* UTF-8: only with SMTPUTF8, only well-formed */
    OK("<j\xc3\xb6ran@example.com>", R | U, "j\xc3\xb6ran@example.com", "j\xc3\xb6ran", "example.com", BU, ""),
    OK("<user@b\xc3\xbc" "cher.example>", R | U, "user@b\xc3\xbc" "cher.example", "user",
       "b\xc3\xbc" "cher.example", BU, ""),
    OK("<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\x85\xac\xe5\x8f\xb8>", M | U,
       "\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\x85\xac\xe5\x8f\xb8", "\xe7\x94\xa8\xe6\x88\xb7",
       "\xe4\xbe\x8b\xe5\xad\x90.\xe5\x85\xac\xe5\x8f\xb8", BU, ""),
    OK("<\"j\xc3\xb6 ran\"@example.com>", R | U, "\"j\xc3\xb6 ran\"@example.com", "j\xc3\xb6 ran", "example.com",
       BQ | BU, ""),
    OK("<\xf0\x9f\x98\x80@example.com>", R | U, "\xf0\x9f\x98\x80@example.com", "\xf0\x9f\x98\x80", "example.com",
       BU, ""),
    OK("<\xc3\xbc@[192.0.2.1]>", R | U, "\xc3\xbc@[192.0.2.1]", "\xc3\xbc", "[192.0.2.1]", BU | BL, ""),
    OK("j\xc3\xb6ran@example.com", M | U, "j\xc3\xb6ran@example.com", "j\xc3\xb6ran", "example.com", BU, ""),
    OK("<a@b.example>", R | U, "a@b.example", "a", "b.example", 0, ""),
    /* a UTF-8 source route is checked, then dropped: utf8 describes the mailbox */
    OK("<@b\xc3\xbc.example:a@b.example>", R | U, "a@b.example", "a", "b.example", 0, ""),
    ERR("<@b\xc3\xbc.example:a@b.example>", R, ADDR_ERR_UTF8),
    ERR("<@b\xc3.example:a@b.example>", R | U, ADDR_ERR_UTF8),
    ERR("<j\xc3\xb6ran@example.com>", R, ADDR_ERR_UTF8),
    ERR("<j\xc3\xb6ran@example.com>", M | S, ADDR_ERR_UTF8),
    ERR("<user@b\xc3\xbc" "cher.example>", R, ADDR_ERR_UTF8),
    ERR("<\"j\xc3\xb6\"@example.com>", R, ADDR_ERR_UTF8),
    ERR("<\xc0\xaf" "a@example.com>", R | U, ADDR_ERR_UTF8),          /* overlong '/' */
    ERR("<\xc1\xbf" "a@example.com>", R | U, ADDR_ERR_UTF8),          /* overlong */
    ERR("<\xe0\x80\xaf" "a@example.com>", R | U, ADDR_ERR_UTF8),      /* 3-byte overlong */
    ERR("<\xf0\x80\x80\xaf" "a@example.com>", R | U, ADDR_ERR_UTF8),  /* 4-byte overlong */
    ERR("<\xc0\x80" "a@example.com>", R | U, ADDR_ERR_UTF8),          /* overlong NUL */
    ERR("<\xed\xa0\x80" "a@example.com>", R | U, ADDR_ERR_UTF8),      /* surrogate */
    ERR("<\xed\xbf\xbf" "a@example.com>", R | U, ADDR_ERR_UTF8),      /* surrogate */
    ERR("<\xf4\x90\x80\x80" "a@example.com>", R | U, ADDR_ERR_UTF8),  /* > U+10FFFF */
    ERR("<\xf5\x80\x80\x80" "a@example.com>", R | U, ADDR_ERR_UTF8),
    ERR("<\xff" "a@example.com>", R | U, ADDR_ERR_UTF8),
    ERR("<\x80" "a@example.com>", R | U, ADDR_ERR_UTF8),              /* stray continuation */
    ERR("<a\xc3@example.com>", R | U, ADDR_ERR_UTF8),                 /* truncated */
    ERR("<a\xe4\xbe@example.com>", R | U, ADDR_ERR_UTF8),             /* truncated */
    ERR("<a@example.com\xc3>", R | U, ADDR_ERR_UTF8),                 /* truncated at the end */
    ERR("a@example.com\xc3", R | U, ADDR_ERR_UTF8),
    ERR("<\"a\\\xc3\xb6\"@example.com>", R | U, ADDR_ERR_SYNTAX),     /* quoted-pair is ASCII only */
    ERR("<a@[192.0.2.\xc3\xb6]>", R | U, ADDR_ERR_DOMAIN),
};

/* check_ok - the parsed fields match the row */
static void check_ok(const struct path_case *c, const struct addr *a, const char *buf, const char *rest)
{
    assert_string_equal(a->addr, c->addr);
    assert_string_equal(a->local, c->local);
    assert_string_equal(a->domain, c->domain);
    assert_int_equal(a->quoted, !!(c->bits & BQ));
    assert_int_equal(a->literal, !!(c->bits & BL));
    assert_int_equal(a->utf8, !!(c->bits & BU));
    assert_int_equal(a->is_null, !!(c->bits & BN));
    assert_true(rest >= buf && rest <= buf + strlen(buf));
    assert_string_equal(rest, c->rest);
}

/* check_err - a failed parse leaves a zeroed result and rest at the argument */
static void check_err(const struct addr *a, const char *buf, const char *rest)
{
    assert_string_equal(a->addr, "");
    assert_string_equal(a->local, "");
    assert_string_equal(a->domain, "");
    assert_int_equal(a->is_null + a->quoted + a->literal + a->utf8, 0);
    assert_ptr_equal(rest, buf);
}

/* run_case - parse one row from an exactly-sized heap copy (ASan sees any over-read) */
static void run_case(const struct path_case *c)
{
    size_t n = strlen(c->in);
    char *buf = malloc(n + 1);
    struct addr a;
    const char *rest = NULL;

    assert_non_null(buf);
    memcpy(buf, c->in, n + 1);
    enum addr_status st = addr_parse_path(buf, c->flags, &a, &rest);
    if (st != c->st)
        print_error("input \"%s\" flags %d: got %d (%s), want %d\n", c->in, c->flags, st,
                    addr_status_text(st), c->st);
    assert_int_equal(st, c->st);
    if (st == ADDR_OK)
        check_ok(c, &a, buf, rest);
    else
        check_err(&a, buf, rest);
    free(buf);
}

static void test_path_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        run_case(&cases[i]);
}

/* fill_domain - n octets of domain: 49-letter labels joined by dots (invalid if n % 50 == 0) */
static void fill_domain(char *d, size_t n)
{
    for (size_t i = 0; i < n; i++)
        d[i] = (i % 50 == 49) ? '.' : (char)('a' + i % 26);
    d[n] = '\0';
}

/* parse_built - format a path and parse it */
static enum addr_status parse_built(int flags, struct addr *a, const char *fmt, const char *x, const char *y)
{
    char buf[2048];
    snprintf(buf, sizeof(buf), fmt, x, y);
    return addr_parse_path(buf, flags, a, NULL);
}

static void test_local_lengths(void **state)
{
    char local[200], quoted[200];
    struct addr a;
    (void)state;

    memset(local, 'x', 64);
    local[64] = '\0';
    assert_int_equal(parse_built(R, &a, "<%s@%s>", local, "b.example"), ADDR_OK);
    assert_int_equal(strlen(a.local), 64);
    assert_int_equal(parse_built(R, &a, "%s@%s", local, "b.example"), ADDR_OK);
    local[64] = 'x';
    local[65] = '\0';
    assert_int_equal(parse_built(R, &a, "<%s@%s>", local, "b.example"), ADDR_ERR_LOCAL_LONG);
    assert_int_equal(parse_built(M, &a, "%s@%s", local, "b.example"), ADDR_ERR_LOCAL_LONG);
    assert_int_equal(parse_built(R, &a, "<%s%s>", local, ""), ADDR_ERR_LOCAL_LONG);
    /* quoted: 64 octets as written (62 inside the quotes) */
    memset(quoted, 'q', 64);
    quoted[0] = quoted[63] = '"';
    quoted[64] = '\0';
    assert_int_equal(parse_built(R, &a, "<%s@%s>", quoted, "b.example"), ADDR_OK);
    assert_int_equal(strlen(a.local), 62);
    quoted[63] = 'q';
    quoted[64] = '"';
    quoted[65] = '\0';
    assert_int_equal(parse_built(R, &a, "<%s@%s>", quoted, "b.example"), ADDR_ERR_LOCAL_LONG);
    /* quoted-pairs count as written: 31 pairs + quotes = 64, 32 pairs = 66 */
    strcpy(quoted, "\"");
    for (int i = 0; i < 31; i++)
        strcat(quoted, "\\\"");
    strcat(quoted, "\"");
    assert_int_equal(parse_built(R, &a, "<%s@%s>", quoted, "b.example"), ADDR_OK);
    assert_int_equal(strlen(a.local), 31);
    strcpy(quoted + strlen(quoted) - 1, "\\\"\"");
    assert_int_equal(parse_built(R, &a, "<%s@%s>", quoted, "b.example"), ADDR_ERR_LOCAL_LONG);
}

static void test_utf8_local_lengths(void **state)
{
    char local[200] = "";
    struct addr a;
    (void)state;

    for (int i = 0; i < 32; i++)
        strcat(local, "\xc3\xa9"); /* 64 octets, 32 characters */
    assert_int_equal(parse_built(R | U, &a, "<%s@%s>", local, "b.example"), ADDR_OK);
    assert_int_equal(a.utf8, 1);
    strcat(local, "\xc3\xa9");
    assert_int_equal(parse_built(R | U, &a, "<%s@%s>", local, "b.example"), ADDR_ERR_LOCAL_LONG);
}

static void test_domain_lengths(void **state)
{
    char d[400];
    struct addr a;
    (void)state;

    fill_domain(d, 255);
    assert_true(addr_domain_valid(d, 0));
    /* a 255-octet domain is valid but cannot fit in a 256-octet path */
    assert_int_equal(parse_built(R, &a, "<a@%s>%s", d, ""), ADDR_ERR_PATH_LONG);
    fill_domain(d, 256);
    assert_false(addr_domain_valid(d, 0));
    assert_int_equal(parse_built(R, &a, "<a@%s>%s", d, ""), ADDR_ERR_DOMAIN_LONG);
    fill_domain(d, 300);
    assert_int_equal(parse_built(R, &a, "<a@%s>%s", d, ""), ADDR_ERR_DOMAIN_LONG);
}

static void test_label_lengths(void **state)
{
    char d[100];
    struct addr a;
    (void)state;

    memset(d, 'l', 63);
    strcpy(d + 63, ".example");
    assert_int_equal(parse_built(R, &a, "<a@%s>%s", d, ""), ADDR_OK);
    memset(d, 'l', 64);
    strcpy(d + 64, ".example");
    assert_int_equal(parse_built(R, &a, "<a@%s>%s", d, ""), ADDR_ERR_DOMAIN);
}

static void test_path_lengths(void **state)
{
    char local[65], d[300], route[300];
    struct addr a;
    (void)state;

    memset(local, 'x', 64);
    local[64] = '\0';
    fill_domain(d, 189); /* 1 + 64 + 1 + 189 + 1 = 256 */
    assert_int_equal(parse_built(R, &a, "<%s@%s>", local, d), ADDR_OK);
    assert_int_equal(strlen(a.addr), 254);
    assert_int_equal(parse_built(R, &a, "%s@%s", local, d), ADDR_OK); /* bare: counted as if bracketed */
    fill_domain(d, 190);                                              /* 257 */
    assert_int_equal(parse_built(R, &a, "<%s@%s>", local, d), ADDR_ERR_PATH_LONG);
    assert_int_equal(parse_built(R, &a, "%s@%s", local, d), ADDR_ERR_PATH_LONG);
    /* the source route counts towards the path length */
    fill_domain(route, 245); /* 2 + 245 + 1 + 11 + 1 = 260 */
    assert_int_equal(parse_built(R, &a, "<@%s:a@%s>", route, "b.example"), ADDR_ERR_PATH_LONG);
    fill_domain(route, 90);
    assert_int_equal(parse_built(R, &a, "<@%s:a@%s>", route, "b.example"), ADDR_OK);
    assert_string_equal(a.addr, "a@b.example");
}

static void test_huge_input(void **state)
{
    size_t n = 100000;
    char *buf = malloc(n + 1);
    struct addr a;
    (void)state;

    assert_non_null(buf);
    memset(buf, 'a', n);
    buf[n] = '\0';
    assert_int_equal(addr_parse_path(buf, R, &a, NULL), ADDR_ERR_LOCAL_LONG);
    buf[0] = '<';
    assert_int_equal(addr_parse_path(buf, R, &a, NULL), ADDR_ERR_UNBALANCED);
    buf[n - 1] = '>';
    buf[n / 2] = '@';
    assert_int_equal(addr_parse_path(buf, R, &a, NULL), ADDR_ERR_LOCAL_LONG);
    buf[1] = '"';
    assert_int_equal(addr_parse_path(buf, R, &a, NULL), ADDR_ERR_UNBALANCED);
    free(buf);
}

struct dom_case {
    const char *d;
    int utf8;
    int ok;
};

static const struct dom_case dom_cases[] = {
    {"example.com", 0, 1}, {"a", 0, 1}, {"a-b.c", 0, 1}, {"1.2.3.4", 0, 1}, {"[1.2.3.4]", 0, 1},
    {"[IPv6:::1]", 0, 1}, {"b\xc3\xbc" "cher.de", 1, 1}, {"b\xc3\xbc" "cher.de", 0, 0}, {"", 0, 0},
    {".", 0, 0}, {"a.", 0, 0}, {".a", 0, 0}, {"a..b", 0, 0}, {"-a", 0, 0}, {"a-", 0, 0}, {"a_b", 0, 0},
    {"a b", 0, 0}, {"a\r\nb", 0, 0}, {"[1.2.3.256]", 0, 0}, {"[IPv6:zz]", 0, 0}, {"[1.2.3.4", 0, 0},
    {"\xc0\xaf.de", 1, 0}, {"a@b", 0, 0}, {"[]", 0, 0},
};

static void test_domain_valid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(dom_cases) / sizeof(dom_cases[0]); i++) {
        if (addr_domain_valid(dom_cases[i].d, dom_cases[i].utf8) != dom_cases[i].ok)
            print_error("domain \"%s\" utf8=%d\n", dom_cases[i].d, dom_cases[i].utf8);
        assert_int_equal(addr_domain_valid(dom_cases[i].d, dom_cases[i].utf8), dom_cases[i].ok);
    }
}

struct utf8_case {
    const char *s;
    size_t len;
    int ok;
};

#define U8(s, ok) {s, sizeof(s) - 1, ok}

static const struct utf8_case utf8_cases[] = {
    U8("", 1), U8("abc", 1), U8("\xc3\xa9", 1), U8("\xe2\x82\xac", 1), U8("\xf0\x9f\x98\x80", 1),
    U8("\xf4\x8f\xbf\xbf", 1), U8("\xed\x9f\xbf", 1), U8("\xee\x80\x80", 1), U8("\xc2\x80", 1),
    U8("\xdf\xbf", 1), U8("\xe0\xa0\x80", 1), U8("\xf0\x90\x80\x80", 1),
    U8("\xc0\x80", 0), U8("\xc1\xbf", 0), U8("\xe0\x9f\xbf", 0), U8("\xf0\x8f\xbf\xbf", 0),
    U8("\xed\xa0\x80", 0), U8("\xed\xbf\xbf", 0), U8("\xf4\x90\x80\x80", 0), U8("\xf5\x80\x80\x80", 0),
    U8("\xf8\x88\x80\x80\x80", 0), U8("\xfe", 0), U8("\xff", 0), U8("\x80", 0), U8("\xbf", 0),
    U8("\xc3", 0), U8("\xe2\x82", 0), U8("\xf0\x9f\x98", 0), U8("\xc3\x28", 0), U8("\xe2\x28\xa1", 0),
    U8("a\0b", 0), U8("\0", 0),
};

static void test_utf8_valid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(utf8_cases) / sizeof(utf8_cases[0]); i++) {
        if (addr_utf8_valid(utf8_cases[i].s, utf8_cases[i].len) != utf8_cases[i].ok)
            print_error("utf8 case %zu\n", i);
        assert_int_equal(addr_utf8_valid(utf8_cases[i].s, utf8_cases[i].len), utf8_cases[i].ok);
    }
    /* a sequence cut off by the length must not be read past it */
    assert_false(addr_utf8_valid("\xc3\xa9", 1));
    assert_true(addr_utf8_valid("ab\xc3\xa9", 2));
}

static void test_status_text(void **state)
{
    (void)state;
    for (int i = ADDR_OK; i <= ADDR_ERR_DOMAIN; i++) {
        const char *t = addr_status_text((enum addr_status)i);
        assert_non_null(t);
        assert_true(strlen(t) > 0 && strlen(t) < 80);
        for (int j = ADDR_OK; j < i; j++)
            assert_string_not_equal(t, addr_status_text((enum addr_status)j));
    }
}

static void test_rest_optional(void **state)
{
    struct addr a;
    (void)state;
    assert_int_equal(addr_parse_path("<a@b.example>", M, &a, NULL), ADDR_OK);
    assert_int_equal(addr_parse_path(">[[D", M, &a, NULL), ADDR_ERR_UNBALANCED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_table),
        cmocka_unit_test(test_local_lengths),
        cmocka_unit_test(test_utf8_local_lengths),
        cmocka_unit_test(test_domain_lengths),
        cmocka_unit_test(test_label_lengths),
        cmocka_unit_test(test_path_lengths),
        cmocka_unit_test(test_huge_input),
        cmocka_unit_test(test_domain_valid),
        cmocka_unit_test(test_utf8_valid),
        cmocka_unit_test(test_status_text),
        cmocka_unit_test(test_rest_optional),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
