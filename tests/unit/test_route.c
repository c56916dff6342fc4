/* test_route.c - next hop syntax, routing order, keys, TLS levels, SASL credentials, map errors */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "route.h"
#include "tmpfile_helper.h"

struct fx {
    char dir[64];
    char transport[128], tls[128], sasl[128];
};

/* setup - a temporary directory for the map files */
static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    if (tmp_dir_make(f->dir, sizeof(f->dir), "route") < 0)
        return -1;
    snprintf(f->transport, sizeof(f->transport), "%s/transport", f->dir);
    snprintf(f->tls, sizeof(f->tls), "%s/tls_policy", f->dir);
    snprintf(f->sasl, sizeof(f->sasl), "%s/sasl_passwd", f->dir);
    *state = f;
    return 0;
}

/* teardown - remove the temporary directory */
static int teardown(void **state)
{
    struct fx *f = *state;
    tmp_dir_remove(f->dir);
    free(f);
    return 0;
}

/* load_cfg - defaults plus the NULL-terminated overrides */
static struct config *load_cfg(const char *first, ...)
{
    char *ov[32];
    int n = 0;
    va_list ap;
    va_start(ap, first);
    for (const char *s = first; s != NULL && n < 32; s = va_arg(ap, const char *))
        ov[n++] = (char *)s;
    va_end(ap);
    char err[512];
    struct config *c = config_load(NULL, ov, n, err, sizeof(err));
    if (c == NULL)
        fail_msg("config: %s", err);
    return c;
}

/* map_setting - "name=path" in a static buffer (one per slot) */
static const char *map_setting(int slot, const char *name, const char *path)
{
    static char b[3][300];
    snprintf(b[slot], sizeof(b[slot]), "%s=%s", name, path);
    return b[slot];
}

/* maps_ok - load the maps of c or fail */
static struct route_maps *maps_ok(const struct config *c)
{
    char err[512];
    struct route_maps *rm = route_maps_load(c, err, sizeof(err));
    if (rm == NULL)
        fail_msg("maps: %s", err);
    return rm;
}

/* lookup - route_lookup that must return 0 */
static struct route lookup(const struct route_maps *rm, const struct config *c, const char *d)
{
    struct route r;
    if (route_lookup(rm, c, d, &r) != 0)
        fail_msg("route_lookup(%s): %s", d, r.error);
    return r;
}

/* ---- nexthop_parse ------------------------------------------------------------------------ */

static void test_nexthop_forms(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int lmtp;
        const char *host;
        int port, mx, unix_sock;
    } t[] = {
        {"example.net", 0, "example.net", 0, 1, 0},
        {"Relay.Example.", 0, "Relay.Example.", 0, 1, 0},
        {"mail_relay-1.example", 0, "mail_relay-1.example", 0, 1, 0},
        {"example.net:2525", 0, "example.net", 2525, 1, 0},
        {"[relay.example]", 0, "relay.example", 0, 0, 0},
        {"[relay.example]:587", 0, "relay.example", 587, 0, 0},
        {"10.1.2.3", 0, "10.1.2.3", 0, 0, 0},
        {"10.1.2.3:2525", 0, "10.1.2.3", 2525, 0, 0},
        {"[10.1.2.3]:65535", 0, "10.1.2.3", 65535, 0, 0},
        {"[2001:db8::1]", 0, "2001:db8::1", 0, 0, 0},
        {"[2001:db8::1]:587", 0, "2001:db8::1", 587, 0, 0},
        {"[IPv6:2001:db8::1]:25", 0, "2001:db8::1", 25, 0, 0},
        {"[::1]:1", 0, "::1", 1, 0, 0},
        {"localhost", 0, "localhost", 0, 1, 0},
        /* lmtp: never MX */
        {"unix:/run/dovecot/lmtp", 1, "/run/dovecot/lmtp", 0, 0, 1},
        {"inet:127.0.0.1:24", 1, "127.0.0.1", 24, 0, 0},
        {"inet:[::1]:2424", 1, "::1", 2424, 0, 0},
        {"inet:dovecot.example", 1, "dovecot.example", 0, 0, 0},
        {"dovecot.example:24", 1, "dovecot.example", 24, 0, 0},
        {"[dovecot.example]:10024", 1, "dovecot.example", 10024, 0, 0},
        {"dovecot", 1, "dovecot", 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        struct nexthop h;
        if (nexthop_parse(t[i].in, t[i].lmtp, &h) != 0)
            fail_msg("rejected: %s", t[i].in);
        assert_string_equal(h.host, t[i].host);
        assert_int_equal(h.port, t[i].port);
        assert_int_equal(h.mx, t[i].mx);
        assert_int_equal(h.unix_sock, t[i].unix_sock);
    }
}

static void test_nexthop_bad(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int lmtp;
    } t[] = {
        {"", 0}, {"[]", 0}, {"[]:25", 0}, {":25", 0}, {"host:", 0}, {"host:0", 0},
        {"host:65536", 0}, {"host:99999", 0}, {"host:123456", 0}, {"host:-1", 0},
        {"host:2x", 0}, {"host:+25", 0}, {"[host]:", 0}, {"[host]x", 0}, {"[host]:25x", 0},
        {"[host", 0}, {"host]", 0}, {"[[host]]", 0}, {"ho st", 0}, {" host", 0}, {"host ", 0},
        {"ho\tst", 0}, {"ho\x01st", 0}, {"ho\x7fst", 0}, {"host\r", 0},
        {"2001:db8::1", 0},      /* IPv6 without brackets */
        {"[2001:db8::zz]", 0},   /* not an address */
        {"[IPv6:10.1.2.3]", 0},  /* the tag needs an IPv6 address */
        {"999.1.2.3", 0},        /* numeric but not IPv4 */
        {"[1.2.3]", 0}, {".example", 0}, {"-x.example", 0}, {"a..b", 0}, {"a/b", 0},
        {"a@b", 0}, {"h\xc3\xa9.example", 0},
        {"unix:/run/x", 0},      /* unix: only for lmtp */
        {"inet:host:24", 0},     /* inet: only for lmtp */
        {"unix:", 1}, {"unix:run/x", 1}, {"unix:/run/ x", 1}, {"inet:", 1},
        {"inet:host:0", 1}, {"inet:unix:/x", 1}, {"lmtp:host", 1},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        struct nexthop h;
        if (nexthop_parse(t[i].in, t[i].lmtp, &h) != -1)
            fail_msg("accepted: \"%s\" (lmtp %d)", t[i].in, t[i].lmtp);
    }
    struct nexthop h;
    assert_int_equal(nexthop_parse(NULL, 0, &h), -1);
    /* over-long parts */
    char big[400];
    memset(big, 'a', sizeof(big));
    big[255] = '\0';
    assert_int_equal(nexthop_parse(big, 0, &h), 0); /* 255 characters: the limit */
    big[256] = '\0';
    big[255] = 'a';
    assert_int_equal(nexthop_parse(big, 0, &h), -1);
    char path[300] = "unix:/";
    memset(path + 6, 'p', 255);
    path[261] = '\0';
    assert_int_equal(nexthop_parse(path, 1, &h), -1);
    memset(big, 'a', sizeof(big));
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(nexthop_parse(big, 0, &h), -1);
}

/* ---- route_lookup ------------------------------------------------------------------------- */

static const char order_map[] = "# destination     transport[:nexthop]\n"
                                "exact.example      smtp:[exact-relay.example]\n"
                                ".sub.example       smtp:parent-relay.example:2525\n"
                                ".example           relay:[top-relay.example]:587\n"
                                "Local.Example      smtp:[mapped-local.example]\n"
                                "\n"
                                "   # indented comment\n"
                                "*                  smtp:[star-relay.example]\n";

/* test_lookup_order - exact beats .parent beats mydestination beats * beats relayhost beats MX */
static void test_lookup_order(void **state)
{
    struct fx *f = *state;
    tmp_file_write(f->transport, order_map);
    struct config *c = load_cfg(map_setting(0, "transport_maps", f->transport),
                                "mydestination=local.example, here.test, a.sub.example",
                                "relayhost=[smarthost.example]", NULL);
    struct route_maps *rm = maps_ok(c);
    struct route r;

    r = lookup(rm, c, "exact.example");
    assert_int_equal(r.kind, ROUTE_SMTP);
    assert_string_equal(r.hop.host, "exact-relay.example");
    assert_string_equal(r.spec, "[exact-relay.example]");
    assert_string_equal(r.key, "smtp:[exact-relay.example]:25");
    /* the nearest .parent */
    r = lookup(rm, c, "b.sub.example");
    assert_string_equal(r.spec, "parent-relay.example:2525");
    assert_int_equal(r.hop.mx, 1);
    assert_int_equal(r.hop.port, 2525);
    assert_string_equal(r.key, "smtp:parent-relay.example:2525");
    r = lookup(rm, c, "x.y.sub.example");
    assert_string_equal(r.spec, "parent-relay.example:2525");
    /* ".sub.example" does not match sub.example itself: the next parent does */
    r = lookup(rm, c, "sub.example");
    assert_string_equal(r.spec, "[top-relay.example]:587");
    assert_string_equal(r.key, "smtp:[top-relay.example]:587");
    r = lookup(rm, c, "other.example");
    assert_string_equal(r.spec, "[top-relay.example]:587");
    /* .parent beats mydestination */
    r = lookup(rm, c, "a.sub.example");
    assert_int_equal(r.kind, ROUTE_SMTP);
    assert_string_equal(r.spec, "parent-relay.example:2525");
    /* exact beats mydestination, case-insensitively both ways */
    r = lookup(rm, c, "LOCAL.example");
    assert_string_equal(r.spec, "[mapped-local.example]");
    /* mydestination beats * */
    r = lookup(rm, c, "here.test.");
    assert_int_equal(r.kind, ROUTE_LOCAL);
    assert_string_equal(r.key, "local");
    r = lookup(rm, c, "Here.Test");
    assert_int_equal(r.kind, ROUTE_LOCAL);
    /* "example" itself is not matched by ".example": * */
    r = lookup(rm, c, "example");
    assert_string_equal(r.spec, "[star-relay.example]");
    r = lookup(rm, c, "elsewhere.net");
    assert_string_equal(r.spec, "[star-relay.example]");
    assert_string_equal(r.key, "smtp:[star-relay.example]:25");
    route_maps_free(rm);
    config_free(c);

    /* without *: relayhost */
    tmp_file_write(f->transport, "exact.example smtp:[exact-relay.example]\n");
    c = load_cfg(map_setting(0, "transport_maps", f->transport), "relayhost=[Smarthost.Example]",
                 "smtp_port=2500", NULL);
    rm = maps_ok(c);
    r = lookup(rm, c, "elsewhere.net");
    assert_int_equal(r.kind, ROUTE_SMTP);
    assert_string_equal(r.hop.host, "Smarthost.Example");
    assert_int_equal(r.hop.port, 0);
    assert_int_equal(r.hop.mx, 0);
    assert_string_equal(r.spec, "[Smarthost.Example]");
    assert_string_equal(r.key, "smtp:[smarthost.example]:2500");
    /* mydestination (the default: $myhostname, localhost.$mydomain, localhost) beats relayhost */
    r = lookup(rm, c, "localhost");
    assert_int_equal(r.kind, ROUTE_LOCAL);
    r = lookup(rm, c, "exact.example");
    assert_string_equal(r.spec, "[exact-relay.example]");
    assert_string_equal(r.key, "smtp:[exact-relay.example]:2500");
    route_maps_free(rm);
    config_free(c);

    /* no maps, no relayhost: the domain's MX */
    c = load_cfg("mydestination=local.example", NULL);
    r = lookup(NULL, c, "Example.NET.");
    assert_int_equal(r.kind, ROUTE_SMTP);
    assert_string_equal(r.hop.host, "example.net");
    assert_int_equal(r.hop.mx, 1);
    assert_int_equal(r.hop.port, 0);
    assert_string_equal(r.spec, "example.net");
    assert_string_equal(r.key, "smtp:example.net");
    r = lookup(NULL, c, "local.example");
    assert_int_equal(r.kind, ROUTE_LOCAL);
    /* an empty map behaves like none */
    tmp_file_write(f->transport, "# nothing\n\n");
    config_free(c);
    c = load_cfg(map_setting(0, "transport_maps", f->transport), NULL);
    rm = maps_ok(c);
    r = lookup(rm, c, "example.net");
    assert_string_equal(r.key, "smtp:example.net");
    route_maps_free(rm);
    config_free(c);
}

/* test_smtp_to_domain - "smtp" / "relay" without a next hop: the domain's MX */
static void test_smtp_to_domain(void **state)
{
    struct fx *f = *state;
    tmp_file_write(f->transport, "direct.example smtp\n"
                             ".direct.example relay:\n"
                             "[192.0.2.7] smtp\n"
                             "*  smtp:[relay.example]\n");
    struct config *c = load_cfg(map_setting(0, "transport_maps", f->transport), NULL);
    struct route_maps *rm = maps_ok(c);
    struct route r = lookup(rm, c, "Direct.Example");
    assert_int_equal(r.kind, ROUTE_SMTP);
    assert_string_equal(r.hop.host, "direct.example");
    assert_int_equal(r.hop.mx, 1);
    assert_string_equal(r.spec, "direct.example");
    assert_string_equal(r.key, "smtp:direct.example");
    r = lookup(rm, c, "mx.direct.example");
    assert_string_equal(r.hop.host, "mx.direct.example");
    assert_int_equal(r.hop.mx, 1);
    assert_string_equal(r.key, "smtp:mx.direct.example");
    /* for a literal: its address */
    r = lookup(rm, c, "[192.0.2.7]");
    assert_string_equal(r.hop.host, "192.0.2.7");
    assert_int_equal(r.hop.mx, 0);
    assert_string_equal(r.key, "smtp:[192.0.2.7]:25");
    route_maps_free(rm);
    config_free(c);
}

/* test_address_literals - smtp to the address, no MX; they still obey *, relayhost */
static void test_address_literals(void **state)
{
    struct fx *f = *state;
    struct config *c = load_cfg("mydestination=[192.0.2.9], local.example", NULL);
    struct route r = lookup(NULL, c, "[192.0.2.1]");
    assert_int_equal(r.kind, ROUTE_SMTP);
    assert_string_equal(r.hop.host, "192.0.2.1");
    assert_int_equal(r.hop.mx, 0);
    assert_int_equal(r.hop.port, 0);
    assert_string_equal(r.spec, "[192.0.2.1]");
    assert_string_equal(r.key, "smtp:[192.0.2.1]:25");
    r = lookup(NULL, c, "[IPv6:2001:DB8:0:0::1]");
    assert_string_equal(r.hop.host, "2001:db8:0:0::1");
    assert_int_equal(r.hop.mx, 0);
    assert_string_equal(r.spec, "[ipv6:2001:db8:0:0::1]");
    assert_string_equal(r.key, "smtp:[2001:db8::1]:25"); /* canonical */
    /* listed in mydestination: local */
    r = lookup(NULL, c, "[192.0.2.9]");
    assert_int_equal(r.kind, ROUTE_LOCAL);
    /* malformed literals and domains: a permanent error, not a config error */
    static const char *bad[] = {"[]", "[192.0.2]", "[999.0.2.1]", "[2001:db8::1]",
                                "[IPv6:192.0.2.1]", "[tag:x]", "[192.0.2.1", "a b.example",
                                "a..example", ".example", "", "a@b", "a/b", "ex\x01.com",
                                "exa]mple"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(route_lookup(NULL, c, bad[i], &r), 0);
        assert_int_equal(r.kind, ROUTE_ERROR);
        assert_string_equal(r.error, "5.1.2 bad destination domain");
    }
    assert_int_equal(route_lookup(NULL, c, NULL, &r), 0);
    assert_int_equal(r.kind, ROUTE_ERROR);
    /* UTF-8 domains are routed to their MX */
    r = lookup(NULL, c, "b\xc3\xbc" "cher.example");
    assert_int_equal(r.hop.mx, 1);
    config_free(c);

    /* an exact entry, *, relayhost apply to literals; .parent entries do not */
    tmp_file_write(f->transport, "[192.0.2.1] error:5.7.1 not that one\n"
                             ".2.1] smtp:[wrong.example]\n"
                             "*  smtp:[star.example]\n");
    c = load_cfg(map_setting(0, "transport_maps", f->transport), NULL);
    struct route_maps *rm = maps_ok(c);
    r = lookup(rm, c, "[192.0.2.1]");
    assert_int_equal(r.kind, ROUTE_ERROR);
    assert_string_equal(r.error, "5.7.1 not that one");
    r = lookup(rm, c, "[198.51.2.1]"); /* would match ".2.1]" */
    assert_string_equal(r.spec, "[star.example]");
    route_maps_free(rm);
    config_free(c);
    c = load_cfg("relayhost=relay.example", NULL);
    r = lookup(NULL, c, "[192.0.2.1]");
    assert_string_equal(r.key, "smtp:relay.example");
    config_free(c);
}

/* test_error_transport - "error:5.7.1 text", "error:text", "error" */
static void test_error_transport(void **state)
{
    struct fx *f = *state;
    tmp_file_write(f->transport, "coded.example    error:5.7.1 no mail here, sorry\n"
                             "plain.example    error:no such domain\n"
                             "bare.example     error\n"
                             "empty.example    error:\n"
                             "codeonly.example ERROR:5.1.2\n"
                             "temp.example     error:4.3.2   try\tlater  \n"
                             "notcode.example  error:5.7 is not a code\n");
    struct config *c = load_cfg(map_setting(0, "transport_maps", f->transport), NULL);
    struct route_maps *rm = maps_ok(c);
    static const struct {
        const char *dom, *error;
    } t[] = {
        {"coded.example", "5.7.1 no mail here, sorry"},
        {"plain.example", "5.0.0 no such domain"},
        {"bare.example", "5.0.0 mail for this destination is refused"},
        {"empty.example", "5.0.0 mail for this destination is refused"},
        {"codeonly.example", "5.1.2 mail for this destination is refused"},
        {"temp.example", "4.3.2 try later"},
        {"notcode.example", "5.0.0 5.7 is not a code"},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        struct route r = lookup(rm, c, t[i].dom);
        assert_int_equal(r.kind, ROUTE_ERROR);
        assert_string_equal(r.error, t[i].error);
        assert_string_equal(r.key, "error");
        assert_int_equal(route_tls(rm, c, t[i].dom, &r, NULL), SMTPC_TLS_NONE);
        const char *u, *p;
        assert_int_equal(route_sasl(rm, &r, t[i].dom, &u, &p), 0);
    }
    route_maps_free(rm);
    config_free(c);
}

/* test_lmtp_transport - lmtp next hops in transport_maps and local_transport */
static void test_lmtp_transport(void **state)
{
    struct fx *f = *state;
    tmp_file_write(f->transport, "sock.example   lmtp:unix:/run/dovecot/lmtp\n"
                             "tcp.example    lmtp:Dovecot.Example:2424\n"
                             "br.example     lmtp:[10.0.0.5]\n"
                             "inet.example   LMTP:inet:[::1]:24\n"
                             "loc.example    local\n"
                             "*              local:\n");
    struct config *c = load_cfg(map_setting(0, "transport_maps", f->transport), NULL);
    struct route_maps *rm = maps_ok(c);
    struct route r = lookup(rm, c, "sock.example");
    assert_int_equal(r.kind, ROUTE_LMTP);
    assert_int_equal(r.hop.unix_sock, 1);
    assert_string_equal(r.hop.host, "/run/dovecot/lmtp");
    assert_string_equal(r.spec, "unix:/run/dovecot/lmtp");
    assert_string_equal(r.key, "lmtp:unix:/run/dovecot/lmtp");
    r = lookup(rm, c, "tcp.example");
    assert_int_equal(r.kind, ROUTE_LMTP);
    assert_int_equal(r.hop.mx, 0);
    assert_int_equal(r.hop.port, 2424);
    assert_string_equal(r.key, "lmtp:[dovecot.example]:2424");
    r = lookup(rm, c, "br.example");
    assert_int_equal(r.hop.port, 0);
    assert_string_equal(r.key, "lmtp:[10.0.0.5]:24");
    r = lookup(rm, c, "inet.example");
    assert_string_equal(r.hop.host, "::1");
    assert_string_equal(r.spec, "inet:[::1]:24");
    assert_string_equal(r.key, "lmtp:[::1]:24");
    r = lookup(rm, c, "loc.example");
    assert_int_equal(r.kind, ROUTE_LOCAL);
    r = lookup(rm, c, "anything.example");
    assert_int_equal(r.kind, ROUTE_LOCAL);
    route_maps_free(rm);
    config_free(c);

    /* local_transport forms */
    static const struct {
        const char *lt;
        enum route_kind kind;
        const char *key;
    } t[] = {
        {"local_transport=local", ROUTE_LOCAL, "local"},
        {"local_transport=lmtp:unix:/run/Dovecot/lmtp", ROUTE_LMTP, "lmtp:unix:/run/Dovecot/lmtp"},
        {"local_transport=lmtp:127.0.0.1:24", ROUTE_LMTP, "lmtp:[127.0.0.1]:24"},
        {"local_transport=lmtp:[mda.example]:2003", ROUTE_LMTP, "lmtp:[mda.example]:2003"},
        {"local_transport=lmtp:inet:mda.example", ROUTE_LMTP, "lmtp:[mda.example]:24"},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        c = load_cfg("mydestination=here.example", t[i].lt, NULL);
        r = lookup(NULL, c, "here.example");
        assert_int_equal(r.kind, t[i].kind);
        assert_string_equal(r.key, t[i].key);
        config_free(c);
    }
}

/* test_keys - normalisation: case, trailing dot, explicit default port for no-MX hops */
static void test_keys(void **state)
{
    (void)state;
    static const struct {
        const char *relayhost, *port, *key;
    } t[] = {
        {"[Relay.Example]", "smtp_port=25", "smtp:[relay.example]:25"},
        {"[Relay.Example.]", "smtp_port=25", "smtp:[relay.example]:25"},
        {"[relay.example]:25", "smtp_port=25", "smtp:[relay.example]:25"},
        {"[relay.example]:587", "smtp_port=25", "smtp:[relay.example]:587"},
        {"[relay.example]", "smtp_port=2525", "smtp:[relay.example]:2525"},
        {"Relay.Example", "smtp_port=25", "smtp:relay.example"},
        {"relay.example:25", "smtp_port=25", "smtp:relay.example"},     /* default port dropped */
        {"relay.example:2525", "smtp_port=25", "smtp:relay.example:2525"},
        {"relay.example", "smtp_port=2525", "smtp:relay.example"},      /* MX hop on smtp_port */
        {"10.1.2.3", "smtp_port=25", "smtp:[10.1.2.3]:25"},             /* IPs get brackets */
        {"10.1.2.3:2525", "smtp_port=25", "smtp:[10.1.2.3]:2525"},
        {"[2001:DB8:0::1]", "smtp_port=25", "smtp:[2001:db8::1]:25"},
        {"[IPv6:2001:db8::1]:26", "smtp_port=25", "smtp:[2001:db8::1]:26"},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        char rh[300];
        snprintf(rh, sizeof(rh), "relayhost=%s", t[i].relayhost);
        struct config *c = load_cfg(rh, t[i].port, NULL);
        struct route r = lookup(NULL, c, "example.net");
        assert_string_equal(r.spec, t[i].relayhost);
        assert_string_equal(r.key, t[i].key);
        config_free(c);
    }
}

/* test_bad_config_values - a bad relayhost or local_transport at lookup time: 4.3.5, -1 */
static void test_bad_config_values(void **state)
{
    (void)state;
    struct config *c = load_cfg("mydestination=here.example", NULL);
    struct route r;
    free(c->relayhost);
    c->relayhost = strdup("bad host");
    assert_int_equal(route_lookup(NULL, c, "example.net", &r), -1);
    assert_int_equal(r.kind, ROUTE_ERROR);
    assert_true(strncmp(r.error, "4.3.5 configuration error: ", 27) == 0);
    assert_non_null(strstr(r.error, "relayhost"));
    /* local mail does not need the relayhost */
    assert_int_equal(route_lookup(NULL, c, "here.example", &r), 0);
    assert_int_equal(r.kind, ROUTE_LOCAL);
    free(c->local_transport);
    c->local_transport = strdup("smtp:[x]");
    assert_int_equal(route_lookup(NULL, c, "here.example", &r), -1);
    assert_int_equal(r.kind, ROUTE_ERROR);
    assert_true(strncmp(r.error, "4.3.5 configuration error: ", 27) == 0);
    assert_non_null(strstr(r.error, "local_transport"));
    free(c->local_transport);
    c->local_transport = strdup("lmtp");
    assert_int_equal(route_lookup(NULL, c, "here.example", &r), -1);
    config_free(c);
}

/* test_config_check - route_config_check and config_load's use of it */
static void test_config_check(void **state)
{
    (void)state;
    static const struct {
        const char *ov, *want;
    } bad[] = {
        {"relayhost=[relay.example", "relayhost: bad next hop"},
        {"relayhost=relay.example:0", "relayhost: bad next hop"},
        {"relayhost=2001:db8::1", "relayhost: bad next hop"},
        {"local_transport=smtp", "local_transport: unknown transport"},
        {"local_transport=lmtp", "local_transport: lmtp needs a next hop"},
        {"local_transport=lmtp:unix:relative", "local_transport: bad next hop"},
        {"local_transport=local:x", "local_transport: local takes no next hop"},
        {"smtp_tls_security_level=dane", "smtp_tls_security_level: must be"},
        {"smtp_port=0", "smtp_port: must be between 1 and 65535"},
        {"smtp_port=65536", "smtp_port: must be between 1 and 65535"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[512];
        char *ov[] = {(char *)bad[i].ov};
        if (config_load(NULL, ov, 1, err, sizeof(err)) != NULL)
            fail_msg("accepted: %s", bad[i].ov);
        if (strstr(err, bad[i].want) == NULL)
            fail_msg("%s: error \"%s\", wanted \"%s\"", bad[i].ov, err, bad[i].want);
    }
    static const char *good[] = {
        "relayhost=[relay.example]:587", "relayhost=relay.example", "relayhost=",
        "local_transport=lmtp:unix:/run/dovecot/lmtp", "local_transport=lmtp:inet:h:24",
        "smtp_tls_security_level=none", "smtp_tls_security_level=wrapper-verify",
        "smtp_tls_security_level=Verify",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        struct config *c = load_cfg(good[i], NULL);
        char err[512];
        assert_int_equal(route_config_check(c, err, sizeof(err)), 0);
        config_free(c);
    }
}

/* ---- route_tls ---------------------------------------------------------------------------- */

/* test_tls_order - spec, then domain, then .parent, then smtp_tls_security_level */
static void test_tls_order(void **state)
{
    struct fx *f = *state;
    tmp_file_write(f->transport, "relayed.example smtp:[Relay.Example]:587\n"
                             "wrapped.example smtp:[smtps.example]:465\n"
                             "sock.example lmtp:unix:/run/lmtp\n"
                             "tcp.example lmtp:[10.0.0.1]:24\n");
    tmp_file_write(f->tls, "# destination     level\n"
                       "[relay.example]:587   VERIFY\n"
                       "relayed.example       none\n"
                       "example.org           encrypt\n"
                       ".example.org          none\n"
                       ".deep.example.org     verify\n"
                       "[smtps.example]:465   wrapper-verify\n"
                       "plainwrap.example     wrapper\n"
                       "sock.example          encrypt\n"
                       "tcp.example           encrypt\n");
    struct config *c = load_cfg(map_setting(0, "transport_maps", f->transport),
                                map_setting(1, "smtp_tls_policy_maps", f->tls),
                                "smtp_tls_security_level=may", NULL);
    struct route_maps *rm = maps_ok(c);
    struct route r;
    int wv = 7;

    /* the next hop as written beats the domain */
    r = lookup(rm, c, "relayed.example");
    assert_int_equal(route_tls(rm, c, "relayed.example", &r, &wv), SMTPC_TLS_VERIFY);
    assert_int_equal(wv, 0);
    /* the domain, then .parent; the nearest parent wins */
    r = lookup(rm, c, "example.org");
    assert_int_equal(route_tls(rm, c, "example.org", &r, &wv), SMTPC_TLS_ENCRYPT);
    r = lookup(rm, c, "a.example.org");
    assert_int_equal(route_tls(rm, c, "a.example.org", &r, NULL), SMTPC_TLS_NONE);
    r = lookup(rm, c, "x.deep.example.org");
    assert_int_equal(route_tls(rm, c, "X.Deep.Example.Org.", &r, NULL), SMTPC_TLS_VERIFY);
    /* ".deep.example.org" is not deep.example.org: the parent ".example.org" */
    r = lookup(rm, c, "deep.example.org");
    assert_int_equal(route_tls(rm, c, "deep.example.org", &r, NULL), SMTPC_TLS_NONE);
    /* nothing: the global level */
    r = lookup(rm, c, "example.net");
    assert_int_equal(route_tls(rm, c, "example.net", &r, NULL), SMTPC_TLS_MAY);
    assert_int_equal(route_tls(rm, c, NULL, &r, NULL), SMTPC_TLS_MAY);
    /* wrappers */
    r = lookup(rm, c, "wrapped.example");
    wv = 0;
    assert_int_equal(route_tls(rm, c, "wrapped.example", &r, &wv), SMTPC_TLS_WRAPPER);
    assert_int_equal(wv, 1);
    assert_int_equal(route_tls(rm, c, "wrapped.example", &r, NULL), SMTPC_TLS_WRAPPER);
    r = lookup(rm, c, "plainwrap.example");
    wv = 1;
    assert_int_equal(route_tls(rm, c, "plainwrap.example", &r, &wv), SMTPC_TLS_WRAPPER);
    assert_int_equal(wv, 0);
    /* lmtp over a unix socket: never TLS; over TCP: the policy */
    r = lookup(rm, c, "sock.example");
    assert_int_equal(route_tls(rm, c, "sock.example", &r, &wv), SMTPC_TLS_NONE);
    r = lookup(rm, c, "tcp.example");
    assert_int_equal(route_tls(rm, c, "tcp.example", &r, &wv), SMTPC_TLS_ENCRYPT);
    /* local routes: none */
    r = lookup(rm, c, "localhost");
    assert_int_equal(r.kind, ROUTE_LOCAL);
    assert_int_equal(route_tls(rm, c, "localhost", &r, &wv), SMTPC_TLS_NONE);
    route_maps_free(rm);
    config_free(c);

    /* global levels, and an unknown one (only possible if cfg bypassed validation) */
    static const struct {
        const char *ov;
        enum smtpc_tls level;
        int wv;
    } g[] = {
        {"smtp_tls_security_level=none", SMTPC_TLS_NONE, 0},
        {"smtp_tls_security_level=may", SMTPC_TLS_MAY, 0},
        {"smtp_tls_security_level=encrypt", SMTPC_TLS_ENCRYPT, 0},
        {"smtp_tls_security_level=verify", SMTPC_TLS_VERIFY, 0},
        {"smtp_tls_security_level=wrapper", SMTPC_TLS_WRAPPER, 0},
        {"smtp_tls_security_level=wrapper-verify", SMTPC_TLS_WRAPPER, 1},
    };
    for (size_t i = 0; i < sizeof(g) / sizeof(g[0]); i++) {
        c = load_cfg(g[i].ov, NULL);
        r = lookup(NULL, c, "example.net");
        wv = 5;
        assert_int_equal(route_tls(NULL, c, "example.net", &r, &wv), g[i].level);
        assert_int_equal(wv, g[i].wv);
        config_free(c);
    }
    c = load_cfg(NULL);
    free(c->smtp_tls_security_level);
    c->smtp_tls_security_level = strdup("dane");
    r = lookup(NULL, c, "example.net");
    assert_int_equal(route_tls(NULL, c, "example.net", &r, &wv), SMTPC_TLS_ENCRYPT);
    assert_int_equal(wv, 0);
    config_free(c);
}

/* ---- route_sasl --------------------------------------------------------------------------- */

/* test_sasl_order - spec, then bare host, then domain */
static void test_sasl_order(void **state)
{
    struct fx *f = *state;
    tmp_file_write(f->transport, "a.example smtp:[relay.example]:587\n"
                             "b.example smtp:[other-relay.example]:587\n"
                             "c.example smtp:[third.example]\n"
                             "d.example smtp\n"
                             "sock.example lmtp:unix:/run/lmtp\n");
    tmp_file_write(f->sasl, "# nexthop                user:password\n"
                        "[Relay.Example]:587      alice:s3cret\n"
                        "relay.example            wrong:host-entry\n"
                        "other-relay.example      bob:pa:ss word  \n"
                        "c.example                carol:by-domain\n"
                        "D.Example.               dave:\n"
                        "/run/lmtp                lmtpuser:x\n");
    struct config *c = load_cfg(map_setting(0, "transport_maps", f->transport),
                                map_setting(2, "smtp_sasl_password_maps", f->sasl), NULL);
    struct route_maps *rm = maps_ok(c);
    const char *u = NULL, *p = NULL;
    struct route r = lookup(rm, c, "a.example");
    assert_int_equal(route_sasl(rm, &r, "a.example", &u, &p), 1);
    assert_string_equal(u, "alice");
    assert_string_equal(p, "s3cret");
    /* bare host of the next hop; the password keeps ':' and inner spaces */
    r = lookup(rm, c, "b.example");
    assert_int_equal(route_sasl(rm, &r, "b.example", &u, &p), 1);
    assert_string_equal(u, "bob");
    assert_string_equal(p, "pa:ss word");
    /* the recipient domain */
    r = lookup(rm, c, "c.example");
    assert_int_equal(route_sasl(rm, &r, "c.example", &u, &p), 1);
    assert_string_equal(u, "carol");
    assert_int_equal(route_sasl(rm, &r, NULL, &u, &p), 0);
    /* MX route: spec is the domain; an empty password */
    r = lookup(rm, c, "d.example");
    assert_int_equal(route_sasl(rm, &r, "d.example", &u, &p), 1);
    assert_string_equal(u, "dave");
    assert_string_equal(p, "");
    /* not in the map */
    r = lookup(rm, c, "e.example");
    assert_int_equal(route_sasl(rm, &r, "e.example", &u, &p), 0);
    r = lookup(rm, c, "localhost");
    assert_int_equal(route_sasl(rm, &r, "localhost", &u, &p), 0);
    assert_int_equal(route_sasl(NULL, &r, "a.example", &u, &p), 0);
    r = lookup(rm, c, "sock.example");
    assert_int_equal(route_sasl(rm, &r, "sock.example", &u, &p), 1);
    assert_string_equal(u, "lmtpuser");
    route_maps_free(rm);
    config_free(c);
}

/* ---- map syntax errors -------------------------------------------------------------------- */

/* refused_n - the map (which: 0 transport, 1 tls, 2 sasl) holding len bytes of text does not
 * load; the error starts with "PATH:line: " and holds want */
static void refused_n(struct fx *f, int which, const char *text, size_t len, int line,
                      const char *want)
{
    static const char *names[] = {"transport_maps", "smtp_tls_policy_maps",
                                  "smtp_sasl_password_maps"};
    const char *paths[] = {f->transport, f->tls, f->sasl};
    tmp_file_put(paths[which], text, len);
    struct config *c = load_cfg(map_setting(which, names[which], paths[which]), NULL);
    char err[512] = "";
    struct route_maps *rm = route_maps_load(c, err, sizeof(err));
    config_free(c);
    if (rm != NULL) {
        route_maps_free(rm);
        fail_msg("accepted: %s", text);
    }
    assert_error_at(err, paths[which], line, want);
}

/* refused - refused_n of a string */
static void refused(struct fx *f, int which, const char *text, int line, const char *want)
{
    refused_n(f, which, text, strlen(text), line, want);
}

static void test_map_errors(void **state)
{
    struct fx *f = *state;
    /* transport_maps */
    refused(f, 0, "# c\na.example smtp\nb.example uucp:host\n", 3, "unknown transport");
    refused(f, 0, "a.example\n", 1, "without a value");
    refused(f, 0, "a.example smtp:[bad\n", 1, "bad next hop");
    refused(f, 0, "a.example smtp:host:0\n", 1, "bad next hop");
    refused(f, 0, "a.example smtp:unix:/x\n", 1, "bad next hop");
    refused(f, 0, "a.example smtp:[host] extra\n", 1, "bad next hop");
    refused(f, 0, "a.example lmtp\n", 1, "lmtp needs a next hop");
    refused(f, 0, "a.example lmtp:unix:rel\n", 1, "bad next hop");
    refused(f, 0, "a.example local:host\n", 1, "local takes no next hop");
    refused(f, 0, "a.example error:2.0.0 fine\n", 1, "error code must be");
    refused(f, 0, "user@a.example smtp\n", 1, "not an address");
    refused(f, 0, "\n\na.example smtp\nb.example smtp\nA.Example. relay\n", 5,
            "duplicate destination (first on line 3)");
    refused(f, 0, "a.example sm\x01tp\n", 1, "control");
    refused(f, 0, "a\x02.example smtp\n", 1, "control");
    refused_n(f, 0, "a.example smtp\nb.example sm\0tp\n", 30, 2, "NUL byte");
    char longtext[600] = "a.example error:5.7.1 ";
    memset(longtext + strlen(longtext), 'x', 400);
    strcat(longtext, "\n");
    refused(f, 0, longtext, 1, "error text too long");
    /* smtp_tls_policy_maps */
    refused(f, 1, "example.org dane\n", 1, "bad TLS level");
    refused(f, 1, "example.org\n", 1, "without a value");
    refused(f, 1, "example.org may encrypt\n", 1, "expected \"destination level\"");
    refused(f, 1, "* encrypt\n", 1, "not supported");
    refused(f, 1, "a.org may\nA.ORG none\n", 2, "duplicate destination (first on line 1)");
    /* smtp_sasl_password_maps */
    refused(f, 2, "[relay]:587 alice\n", 1, "user:password");
    refused(f, 2, "[relay]:587 :pw\n", 1, "empty user name");
    refused(f, 2, "[relay]:587\n", 1, "without a value");
    refused(f, 2, "[relay]:587 a:b\n[RELAY]:587 c:d\n", 2, "duplicate");
    refused(f, 2, "[relay]:587 a:b\x01\n", 1, "control");

    /* a missing file: "PATH: reason" */
    char path[200], ov[260], err[512];
    snprintf(path, sizeof(path), "%s/nope", f->dir);
    snprintf(ov, sizeof(ov), "smtp_tls_policy_maps=%s", path);
    struct config *c = load_cfg(ov, NULL);
    assert_null(route_maps_load(c, err, sizeof(err)));
    assert_true(strncmp(err, path, strlen(path)) == 0);
    config_free(c);
    /* CRLF line ends and tabs are fine */
    tmp_file_write(f->transport, "a.example\tsmtp:[relay.example]\r\n\r\n# x\r\n");
    c = load_cfg(map_setting(0, "transport_maps", f->transport), NULL);
    struct route_maps *rm = maps_ok(c);
    struct route r = lookup(rm, c, "a.example");
    assert_string_equal(r.spec, "[relay.example]");
    route_maps_free(rm);
    config_free(c);
    route_maps_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nexthop_forms),
        cmocka_unit_test(test_nexthop_bad),
        cmocka_unit_test_setup_teardown(test_lookup_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_smtp_to_domain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_address_literals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_transport, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lmtp_transport, setup, teardown),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_bad_config_values),
        cmocka_unit_test(test_config_check),
        cmocka_unit_test_setup_teardown(test_tls_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sasl_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_map_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
