/* test_net.c - listen address parsing, CIDR matching, address text */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "net.h"

/* make_sa - sockaddr from a numeric address (IPv4 or IPv6) */
static void make_sa(const char *text, int port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, text, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
    } else if (inet_pton(AF_INET6, text, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
    } else {
        fail_msg("test address \"%s\" does not parse", text);
    }
}

/* ---- net_parse_hostport ------------------------------------------------ */

struct hp_case {
    const char *in;
    int ok;
    int family;
    const char *addr; /* text of the raw address (inet_ntop of the family) */
    int port;
};

static const struct hp_case hp_cases[] = {
    {"127.0.0.1:25", 1, AF_INET, "127.0.0.1", 25},
    {"0.0.0.0:25", 1, AF_INET, "0.0.0.0", 25},
    {"192.0.2.1:65535", 1, AF_INET, "192.0.2.1", 65535},
    {"192.0.2.1:1", 1, AF_INET, "192.0.2.1", 1},
    {"*:25", 1, AF_INET, "0.0.0.0", 25},
    {"*:2525", 1, AF_INET, "0.0.0.0", 2525},
    {"[::1]:2525", 1, AF_INET6, "::1", 2525},
    {"[::]:25", 1, AF_INET6, "::", 25},
    {"[2001:db8::1]:587", 1, AF_INET6, "2001:db8::1", 587},
    {"[::ffff:192.0.2.1]:25", 1, AF_INET6, "::ffff:192.0.2.1", 25},
    /* bad ports */
    {"127.0.0.1:0", 0, 0, NULL, 0},
    {"127.0.0.1:65536", 0, 0, NULL, 0},
    {"127.0.0.1:99999999999999999999", 0, 0, NULL, 0},
    {"127.0.0.1:-1", 0, 0, NULL, 0},
    {"127.0.0.1:25x", 0, 0, NULL, 0},
    {"127.0.0.1:x25", 0, 0, NULL, 0},
    {"127.0.0.1:smtp", 0, 0, NULL, 0},
    {"127.0.0.1:2.5", 0, 0, NULL, 0},
    {"[::1]:0", 0, 0, NULL, 0},
    {"[::1]:70000", 0, 0, NULL, 0},
    {"*:0", 0, 0, NULL, 0},
    /* missing port */
    {"127.0.0.1", 0, 0, NULL, 0},
    {"127.0.0.1:", 0, 0, NULL, 0},
    {"[::1]", 0, 0, NULL, 0},
    {"[::1]:", 0, 0, NULL, 0},
    {"[::1]25", 0, 0, NULL, 0},
    {"*", 0, 0, NULL, 0},
    {"", 0, 0, NULL, 0},
    /* bad hosts */
    {"[::1:25", 0, 0, NULL, 0},
    {"256.0.0.1:25", 0, 0, NULL, 0},
    {"1.2.3:25", 0, 0, NULL, 0},
    {"localhost:25", 0, 0, NULL, 0},
    {"[nothex::1]:25", 0, 0, NULL, 0},
    {"[2001:db8::1:25", 0, 0, NULL, 0},
    {"**:25", 0, 0, NULL, 0},
};

static void test_parse_hostport(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(hp_cases) / sizeof(hp_cases[0]); i++) {
        const struct hp_case *c = &hp_cases[i];
        struct sockaddr_storage ss;
        socklen_t len = 12345;
        memset(&ss, 0xa5, sizeof(ss));
        int r = net_parse_hostport(c->in, &ss, &len);
        if (!c->ok) {
            if (r != -1)
                fail_msg("\"%s\" accepted", c->in);
            continue;
        }
        if (r != 0)
            fail_msg("\"%s\" rejected", c->in);
        assert_int_equal(ss.ss_family, c->family);
        char text[INET6_ADDRSTRLEN];
        if (c->family == AF_INET) {
            struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
            assert_int_equal(len, sizeof(struct sockaddr_in));
            assert_non_null(inet_ntop(AF_INET, &sin->sin_addr, text, sizeof(text)));
            assert_int_equal(ntohs(sin->sin_port), c->port);
        } else {
            struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
            assert_int_equal(len, sizeof(struct sockaddr_in6));
            assert_non_null(inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof(text)));
            assert_int_equal(ntohs(sin6->sin6_port), c->port);
            assert_int_equal(sin6->sin6_flowinfo, 0);
            assert_int_equal(sin6->sin6_scope_id, 0);
        }
        if (strcmp(text, c->addr) != 0)
            fail_msg("\"%s\": address %s, want %s", c->in, text, c->addr);
        assert_int_equal(net_port((struct sockaddr *)&ss), c->port);
    }
}

static void test_parse_hostport_long_host(void **state)
{
    (void)state;
    char in[1200];
    memset(in, '1', sizeof(in));
    strcpy(in + 1000, ":25");
    struct sockaddr_storage ss;
    socklen_t len;
    assert_int_equal(net_parse_hostport(in, &ss, &len), -1);
    in[0] = '[';
    strcpy(in + 999, "]:25");
    assert_int_equal(net_parse_hostport(in, &ss, &len), -1);
}

/* ---- net_cidr_match ----------------------------------------------------- */

struct cidr_case {
    const char *list;
    const char *client;
    int want; /* 1 match, 0 no match, -1 malformed list */
};

static const struct cidr_case cidr_cases[] = {
    /* IPv4 */
    {"127.0.0.0/8", "127.0.0.1", 1},
    {"127.0.0.0/8", "127.255.255.255", 1},
    {"127.0.0.0/8", "128.0.0.1", 0},
    {"127.0.0.0/8", "126.255.255.255", 0},
    {"10.0.0.0/8, 192.168.0.0/16", "192.168.5.5", 1},
    {"10.0.0.0/8, 192.168.0.0/16", "192.169.0.1", 0},
    {"10.0.0.0/8,192.168.0.0/16", "10.1.2.3", 1},
    {"10.0.0.0/8,,  \t 192.168.0.0/16 ,", "192.168.0.0", 1},
    {"192.0.2.0/24", "192.0.2.255", 1},
    {"192.0.2.0/24", "192.0.3.0", 0},
    {"192.0.2.0/25", "192.0.2.127", 1},
    {"192.0.2.0/25", "192.0.2.128", 0},
    {"192.0.2.6/31", "192.0.2.7", 1},
    {"192.0.2.6/31", "192.0.2.8", 0},
    {"192.0.2.6/31", "192.0.2.5", 0},
    {"128.0.0.0/1", "200.0.0.1", 1},
    {"128.0.0.0/1", "100.0.0.1", 0},
    {"127.0.0.1/8", "127.9.9.9", 1}, /* host bits in the network are ignored */
    /* /32 and no prefix: one host */
    {"192.0.2.7/32", "192.0.2.7", 1},
    {"192.0.2.7/32", "192.0.2.6", 0},
    {"192.0.2.7", "192.0.2.7", 1},
    {"192.0.2.7", "192.0.2.70", 0},
    {"192.0.2.7", "192.0.2.6", 0},
    {"[192.0.2.7]", "192.0.2.7", 1},
    /* /0 */
    {"0.0.0.0/0", "203.0.113.9", 1},
    {"0.0.0.0/0", "255.255.255.255", 1},
    {"0.0.0.0/0", "::1", 0},          /* an IPv4 network never matches an IPv6 client */
    {"[::]/0", "2001:db8::1", 1},
    {"[::]/0", "192.0.2.1", 0},       /* nor the reverse */
    /* IPv6 */
    {"[::1]/128", "::1", 1},
    {"[::1]/128", "::2", 0},
    {"[::1]", "::1", 1},
    {"[::1]", "::", 0},
    {"[2001:db8::]/32", "2001:db8:ffff::1", 1},
    {"[2001:db8::]/32", "2001:db9::1", 0},
    {"[2001:db8::1]", "2001:db8::1", 1},
    {"[2001:db8::1]", "2001:db8::1:0", 0},
    {"[2001:db8::]/65", "2001:db8::7fff:0:0:1", 1},
    {"[2001:db8::]/65", "2001:db8:0:0:8000::1", 0},
    {"[2001:db8::]/127", "2001:db8::1", 1},
    {"[2001:db8::]/127", "2001:db8::2", 0},
    {"127.0.0.0/8, [::1]/128", "::1", 1},
    {"127.0.0.0/8, [::1]/128", "127.0.0.1", 1},
    {"127.0.0.0/8, [::1]/128", "::2", 0},
    /* an IPv4-mapped IPv6 client is matched as IPv4 */
    {"127.0.0.0/8", "::ffff:127.0.0.1", 1},
    {"192.0.2.0/24", "::ffff:192.0.2.55", 1},
    {"192.0.2.0/24", "::ffff:198.51.100.1", 0},
    {"192.0.2.55", "::ffff:192.0.2.55", 1},
    {"[::1]/128", "::ffff:127.0.0.1", 0},
    /* empty lists */
    {"", "127.0.0.1", 0},
    {" , ,", "::1", 0},
    /* malformed entries */
    {"127.0.0.0/33", "127.0.0.1", -1},
    {"[::1]/129", "::1", -1},
    {"127.0.0.0/", "127.0.0.1", -1},
    {"127.0.0.0/8x", "127.0.0.1", -1},
    {"127.0.0.0/x", "127.0.0.1", -1},
    {"127.0.0.0/8/8", "127.0.0.1", -1},
    {"/8", "127.0.0.1", -1},
    {"300.1.1.1", "127.0.0.1", -1},
    {"1.2.3", "1.2.3.0", -1},
    {"example.com", "127.0.0.1", -1},
    {"[::1", "::1", -1},
    {"::1]", "::1", -1},
    {"[]", "::1", -1},
    {"[127.0.0.1/8]", "127.0.0.1", -1},
    {"127.0.0.0/8, bogus", "127.0.0.1", -1}, /* a bad entry is reported even after a match */
    {"bogus, 127.0.0.0/8", "127.0.0.1", -1},
};

static void test_cidr_match(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cidr_cases) / sizeof(cidr_cases[0]); i++) {
        const struct cidr_case *c = &cidr_cases[i];
        struct sockaddr_storage ss;
        make_sa(c->client, 25, &ss);
        char err[256] = "";
        int r = net_cidr_match(c->list, (struct sockaddr *)&ss, err, sizeof(err));
        if (r != c->want)
            fail_msg("list \"%s\" client %s: got %d, want %d", c->list, c->client, r, c->want);
        if (c->want == -1) {
            if (strstr(err, "bad network") == NULL)
                fail_msg("list \"%s\": error text \"%s\"", c->list, err);
        }
        /* err may be NULL */
        assert_int_equal(net_cidr_match(c->list, (struct sockaddr *)&ss, NULL, 0), c->want);
    }
}

static void test_cidr_error_names_entry(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    make_sa("192.0.2.1", 25, &ss);
    char err[256] = "";
    assert_int_equal(net_cidr_match("10.0.0.0/8 192.0.2.0/40", (struct sockaddr *)&ss, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "192.0.2.0"));
    /* a small err buffer is truncated, not overrun */
    char small[8];
    memset(small, 'Z', sizeof(small));
    assert_int_equal(net_cidr_match("nonsense", (struct sockaddr *)&ss, small, 5), -1);
    assert_int_equal(strlen(small), 4);
    assert_int_equal(small[5], 'Z');
}

static void test_cidr_negative_prefix(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    make_sa("10.0.0.1", 25, &ss);
    char err[256] = "";
    int r = net_cidr_match("10.0.0.1/-1", (struct sockaddr *)&ss, err, sizeof(err));
    assert_int_equal(r, -1);
    assert_int_equal(net_cidr_match("[::1]/-1", (struct sockaddr *)&ss, err, sizeof(err)), -1);
}

static void test_cidr_non_ip_client(void **state)
{
    (void)state;
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    char err[64];
    assert_int_equal(net_cidr_match("0.0.0.0/0, [::]/0", (struct sockaddr *)&sun, err, sizeof(err)), 0);
    assert_int_equal(net_cidr_match("bogus", (struct sockaddr *)&sun, err, sizeof(err)), -1);
}

/* ---- net_addr_text / net_port -------------------------------------------- */

struct text_case {
    const char *addr;
    const char *want;
};

static const struct text_case text_cases[] = {
    {"192.0.2.1", "192.0.2.1"},
    {"0.0.0.0", "0.0.0.0"},
    {"255.255.255.255", "255.255.255.255"},
    {"::1", "::1"},
    {"2001:db8::1", "2001:db8::1"},
    {"2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"},
    {"::ffff:192.0.2.1", "192.0.2.1"},  /* IPv4-mapped shown as IPv4 */
    {"::ffff:127.0.0.1", "127.0.0.1"},
    {"fe80::1", "fe80::1"},
};

static void test_addr_text(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(text_cases) / sizeof(text_cases[0]); i++) {
        struct sockaddr_storage ss;
        make_sa(text_cases[i].addr, 4242, &ss);
        char out[INET6_ADDRSTRLEN + 8];
        memset(out, 'Z', sizeof(out));
        net_addr_text((struct sockaddr *)&ss, out, sizeof(out));
        if (strcmp(out, text_cases[i].want) != 0)
            fail_msg("%s: got \"%s\", want \"%s\"", text_cases[i].addr, out, text_cases[i].want);
        assert_int_equal(net_port((struct sockaddr *)&ss), 4242);
    }
}

static void test_addr_text_odd(void **state)
{
    (void)state;
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    char out[32];
    net_addr_text((struct sockaddr *)&sun, out, sizeof(out));
    assert_string_equal(out, "unknown");
    assert_int_equal(net_port((struct sockaddr *)&sun), 0);

    /* a buffer too small for the address: terminated, not overrun */
    struct sockaddr_storage ss;
    make_sa("2001:db8::1234:5678", 25, &ss);
    char small[8];
    memset(small, 'Z', sizeof(small));
    net_addr_text((struct sockaddr *)&ss, small, 6);
    assert_true(strlen(small) < 6);
    assert_int_equal(small[6], 'Z');
    assert_int_equal(small[7], 'Z');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_hostport),
        cmocka_unit_test(test_parse_hostport_long_host),
        cmocka_unit_test(test_cidr_match),
        cmocka_unit_test(test_cidr_error_names_entry),
        cmocka_unit_test(test_cidr_negative_prefix),
        cmocka_unit_test(test_cidr_non_ip_client),
        cmocka_unit_test(test_addr_text),
        cmocka_unit_test(test_addr_text_odd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
