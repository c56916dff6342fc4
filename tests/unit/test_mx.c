/* test_mx.c - MX and A/AAAA lookups against a private dnsmasq on a free loopback port
 *
 * The zone is under "example." (RFC 2606): unbound answers "test.", "invalid.",
 * "onion.", "localhost." and "home.arpa." itself (RFC 6761 default local zones, NXDOMAIN)
 * without asking the forwarder, so dnsmasq records there would never be seen. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "mx.h"

static pid_t dnsmasq_pid = -1;
static int dns_port;
static char server[64];             /* "127.0.0.1@PORT" */
static struct event_base *base;
static int in_call;                 /* set while mx_lookup/addr_lookup runs */
static int sync_calls;              /* callbacks that ran inside the call */

/* find_dnsmasq - path of the dnsmasq binary or NULL */
static const char *find_dnsmasq(void)
{
    static const char *const paths[] = {"/usr/sbin/dnsmasq", "/usr/local/sbin/dnsmasq", "/sbin/dnsmasq",
                                        "/usr/bin/dnsmasq"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
        if (access(paths[i], X_OK) == 0)
            return paths[i];
    return NULL;
}

/* free_port - a loopback port free for UDP and TCP right now */
static int free_port(void)
{
    for (int tries = 0; tries < 20; tries++) {
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof(sin);
        int u = socket(AF_INET, SOCK_DGRAM, 0);
        if (u < 0 || bind(u, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
            getsockname(u, (struct sockaddr *)&sin, &len) != 0) {
            if (u >= 0)
                close(u);
            continue;
        }
        int t = socket(AF_INET, SOCK_STREAM, 0);
        int ok = t >= 0 && bind(t, (struct sockaddr *)&sin, sizeof(sin)) == 0;
        if (t >= 0)
            close(t);
        close(u);
        if (ok)
            return ntohs(sin.sin_port);
    }
    return -1;
}

/* dns_probe - one A query for plain.example to 127.0.0.1:port; 1 if anything answered */
static int dns_probe(int port)
{
    static const unsigned char q[] = {0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0,
                                      5, 'p', 'l', 'a', 'i', 'n', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0,
                                      0, 1, 0, 1};
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    if (s < 0)
        return 0;
    unsigned char ans[512];
    struct pollfd pfd = {.fd = s, .events = POLLIN};
    int ok = sendto(s, q, sizeof(q), 0, (struct sockaddr *)&sin, sizeof(sin)) == (ssize_t)sizeof(q) &&
             poll(&pfd, 1, 200) == 1 && recv(s, ans, sizeof(ans), 0) >= 12 && ans[0] == 0x12;
    close(s);
    return ok;
}

/* dnsmasq_exec - the child: exec dnsmasq with the test zone */
static void dnsmasq_exec(const char *bin, int port)
{
    char portarg[32];
    snprintf(portarg, sizeof(portarg), "--port=%d", port);
#ifdef __linux__
    prctl(PR_SET_PDEATHSIG, SIGTERM);   /* the test crashed: dnsmasq goes too */
#endif
    int null = open("/dev/null", O_RDWR);
    if (null >= 0 && getenv("TEST_MX_DNSMASQ_LOG") == NULL) {
        dup2(null, 1);
        dup2(null, 2);
    }
    execl(bin, bin, "--no-daemon", "--no-resolv", "--no-hosts", portarg, "--listen-address=127.0.0.1",
          "--bind-interfaces", "--conf-file=/dev/null", "--local=/example/",
          "--mx-host=dom.example,mx1.dom.example,10", "--mx-host=dom.example,mx2.dom.example,20",
          "--mx-host=order.example,c.order.example,30", "--mx-host=order.example,a.order.example,10",
          "--mx-host=order.example,b.order.example,20",
          "--mx-host=eq.example,a.eq.example,10", "--mx-host=eq.example,b.eq.example,10", "--mx-host=eq.example,c.eq.example,10",
          "--host-record=mx1.dom.example,127.0.0.11", "--host-record=v6.dom.example,::1,127.0.0.12",
          "--host-record=v6only.dom.example,::2", "--host-record=plain.example,127.0.0.13",
          "--dns-rr=nullmx.example,15,000000", "--dns-rr=badname.example,15,000a03612a6200",
          (char *)NULL);
    _exit(127);
}

/* group_setup - start dnsmasq on a free port and wait until it answers */
static int group_setup(void **state)
{
    (void)state;
    const char *bin = find_dnsmasq();
    if (bin == NULL)
        return 0;   /* every test skips */
    dns_port = free_port();
    if (dns_port < 0)
        return -1;
    snprintf(server, sizeof(server), "127.0.0.1@%d", dns_port);
    dnsmasq_pid = fork();
    if (dnsmasq_pid < 0)
        return -1;
    if (dnsmasq_pid == 0)
        dnsmasq_exec(bin, dns_port);
    for (int i = 0; i < 50; i++) {
        if (dns_probe(dns_port))
            return 0;
        if (waitpid(dnsmasq_pid, NULL, WNOHANG) == dnsmasq_pid) {
            dnsmasq_pid = -1;
            return -1;
        }
    }
    return -1;
}

/* group_teardown - stop dnsmasq */
static int group_teardown(void **state)
{
    (void)state;
    if (dnsmasq_pid > 0) {
        kill(dnsmasq_pid, SIGTERM);
        waitpid(dnsmasq_pid, NULL, 0);
    }
    dnsmasq_pid = -1;
    return 0;
}

/* setup - an event base and a resolver pointed at dnsmasq */
static int setup(void **state)
{
    (void)state;
    sync_calls = 0;
    base = event_base_new();
    return base ? 0 : -1;
}

/* teardown - resolver and event base go away */
static int teardown(void **state)
{
    (void)state;
    mx_shutdown();
    event_base_free(base);
    base = NULL;
    return 0;
}

/* need_dnsmasq - skip the test without dnsmasq; then mx_init at server */
static void need_dnsmasq(const char *servers)
{
    if (dnsmasq_pid <= 0)
        skip();
    assert_int_equal(mx_init(base, servers), 0);
}

static int timed_out;

/* on_timeout - the safety timer of run_until */
static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    timed_out = 1;
    event_base_loopbreak(base);
}

/* run_until - run the loop until *count reaches want or secs pass; 1 if reached */
static int run_until(const int *count, int want, int secs)
{
    struct timeval tv = {secs, 0};
    struct event *t = evtimer_new(base, on_timeout, NULL);
    evtimer_add(t, &tv);
    timed_out = 0;
    while (*count < want && !timed_out)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(t);
    return *count >= want;
}

struct mx_got {
    int calls;
    struct mx_result r;
};

/* mx_cb - keep the result */
static void mx_cb(void *arg, const struct mx_result *r)
{
    struct mx_got *g = arg;
    if (in_call)
        sync_calls++;
    g->calls++;
    g->r = *r;
}

/* do_mx - look up domain and wait for the answer */
static void do_mx(const char *domain, struct mx_got *g, int secs)
{
    memset(g, 0, sizeof(*g));
    in_call = 1;
    mx_lookup(domain, mx_cb, g);
    in_call = 0;
    assert_int_equal(g->calls, 0);
    assert_true(run_until(&g->calls, 1, secs));
    assert_int_equal(g->calls, 1);
    assert_int_equal(sync_calls, 0);
}

struct addr_got {
    int calls;
    struct addr_result r;
};

/* addr_cb - keep the result */
static void addr_cb(void *arg, const struct addr_result *r)
{
    struct addr_got *g = arg;
    if (in_call)
        sync_calls++;
    g->calls++;
    g->r = *r;
}

/* do_addr - look up host and wait for the answer */
static void do_addr(const char *host, struct addr_got *g, int secs)
{
    memset(g, 0, sizeof(*g));
    in_call = 1;
    addr_lookup(host, addr_cb, g);
    in_call = 0;
    assert_int_equal(g->calls, 0);
    assert_true(run_until(&g->calls, 1, secs));
    assert_int_equal(g->calls, 1);
    assert_int_equal(sync_calls, 0);
}

/* addr_is - addrs[i] has this family and numeric address, port 0 */
static void addr_is(const struct addr_result *r, size_t i, const char *text)
{
    char buf[INET6_ADDRSTRLEN];
    const struct sockaddr_storage *ss = &r->addrs[i];
    assert_true(i < r->naddrs);
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, buf, sizeof(buf));
        assert_int_equal(s6->sin6_port, 0);
    } else {
        assert_int_equal(ss->ss_family, AF_INET);
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &s4->sin_addr, buf, sizeof(buf));
        assert_int_equal(s4->sin_port, 0);
    }
    assert_string_equal(buf, text);
}

/* test_mx_order - hosts sorted by preference, whatever the server's order */
static void test_mx_order(void **state)
{
    (void)state;
    need_dnsmasq(server);
    struct mx_got g;
    do_mx("dom.example", &g, 5);
    assert_int_equal(g.r.status, MX_OK);
    assert_int_equal(g.r.nhosts, 2);
    assert_string_equal(g.r.hosts[0].name, "mx1.dom.example");
    assert_int_equal(g.r.hosts[0].pref, 10);
    assert_string_equal(g.r.hosts[1].name, "mx2.dom.example");
    assert_int_equal(g.r.hosts[1].pref, 20);
    do_mx("Order.EXAMPLE.", &g, 5);
    assert_int_equal(g.r.status, MX_OK);
    assert_int_equal(g.r.nhosts, 3);
    assert_string_equal(g.r.hosts[0].name, "a.order.example");
    assert_string_equal(g.r.hosts[1].name, "b.order.example");
    assert_string_equal(g.r.hosts[2].name, "c.order.example");
}

/* test_mx_colon_forms - "ip:port" and lists with a bad entry work; only bad entries fail */
static void test_mx_colon_forms(void **state)
{
    (void)state;
    char list[128];
    if (dnsmasq_pid <= 0)
        skip();
    assert_int_equal(mx_init(base, "localhost"), -1);
    assert_int_equal(mx_init(base, "127.0.0.1:0, 127.0.0.1:65536, [::1"), -1);
    snprintf(list, sizeof(list), "bogus, 127.0.0.1:%d", dns_port);
    assert_int_equal(mx_init(base, list), 0);
    struct mx_got g;
    do_mx("dom.example", &g, 5);
    assert_int_equal(g.r.status, MX_OK);
    assert_int_equal(g.r.nhosts, 2);
    mx_shutdown();
    snprintf(list, sizeof(list), "127.0.0.1:%d", dns_port);
    need_dnsmasq(list);
    do_mx("dom.example", &g, 5);
    assert_int_equal(g.r.status, MX_OK);
}

/* test_mx_shuffle - equal preferences come in varying order */
static void test_mx_shuffle(void **state)
{
    (void)state;
    need_dnsmasq(server);
    enum { N = 30 };
    struct mx_got g[N];
    int total = 0, seen[3] = {0, 0, 0};
    for (int i = 0; i < N; i++) {
        memset(&g[i], 0, sizeof(g[i]));
        mx_lookup("eq.example", mx_cb, &g[i]);
    }
    for (int i = 0; i < N; i++) {
        assert_true(run_until(&g[i].calls, 1, 5));
        total += g[i].calls;
        assert_int_equal(g[i].r.status, MX_OK);
        assert_int_equal(g[i].r.nhosts, 3);
        int mask = 0;
        for (size_t k = 0; k < 3; k++) {
            const char *n = g[i].r.hosts[k].name;
            assert_int_equal(g[i].r.hosts[k].pref, 10);
            assert_true(strlen(n) == 12 && n[0] >= 'a' && n[0] <= 'c' && strcmp(n + 1, ".eq.example") == 0);
            mask |= 1 << (n[0] - 'a');
        }
        assert_int_equal(mask, 7);
        seen[g[i].r.hosts[0].name[0] - 'a']++;
    }
    assert_int_equal(total, N);
    assert_true((seen[0] > 0) + (seen[1] > 0) + (seen[2] > 0) >= 2);
}

/* test_mx_no_mx - a name without MX: the domain itself (RFC 5321 5.1) */
static void test_mx_no_mx(void **state)
{
    (void)state;
    need_dnsmasq(server);
    struct mx_got g;
    do_mx("PLAIN.example.", &g, 5);
    assert_int_equal(g.r.status, MX_NO_MX);
    assert_int_equal(g.r.nhosts, 1);
    assert_string_equal(g.r.hosts[0].name, "plain.example");
}

/* test_mx_null - "MX 0 ." (RFC 7505) */
static void test_mx_null(void **state)
{
    (void)state;
    need_dnsmasq(server);
    struct mx_got g;
    do_mx("nullmx.example", &g, 5);
    assert_int_equal(g.r.status, MX_NULL_MX);
    assert_int_equal(g.r.nhosts, 0);
}

/* test_mx_nxdomain - unknown names, and names that cannot exist, are permanent */
static void test_mx_nxdomain(void **state)
{
    (void)state;
    need_dnsmasq(server);
    struct mx_got g;
    do_mx("nosuch.example", &g, 5);
    assert_int_equal(g.r.status, MX_NXDOMAIN);
    do_mx("bad name.example", &g, 5);
    assert_int_equal(g.r.status, MX_NXDOMAIN);
    do_mx("", &g, 5);
    assert_int_equal(g.r.status, MX_NXDOMAIN);
    do_mx("a..example", &g, 5);
    assert_int_equal(g.r.status, MX_NXDOMAIN);
}

/* test_mx_bad_record - an MX whose host name is not a host name is not used */
static void test_mx_bad_record(void **state)
{
    (void)state;
    need_dnsmasq(server);
    struct mx_got g;
    do_mx("badname.example", &g, 5);
    assert_int_equal(g.r.status, MX_TEMPFAIL);
    assert_int_equal(g.r.nhosts, 0);
}

/* test_tempfail - nobody answers: temporary failure for MX and addresses */
static void test_tempfail(void **state)
{
    (void)state;
    if (dnsmasq_pid <= 0)
        skip();
    char dead[64];
    int port = free_port();
    assert_true(port > 0);
    snprintf(dead, sizeof(dead), "127.0.0.1@%d", port);
    assert_int_equal(mx_init(base, dead), 0);
    struct mx_got g;
    struct addr_got a;
    memset(&g, 0, sizeof(g));
    memset(&a, 0, sizeof(a));
    mx_lookup("dom.example", mx_cb, &g);
    addr_lookup("mx1.dom.example", addr_cb, &a);
    /* unbound doubles its timeout from 376 ms up to infra-cache-max-rtt (5 s in mx.c),
     * then gives up: about 11 s */
    assert_true(run_until(&g.calls, 1, 20));
    assert_true(run_until(&a.calls, 1, 20));
    assert_int_equal(g.r.status, MX_TEMPFAIL);
    assert_int_equal(a.r.status, 2);
    assert_int_equal(a.r.naddrs, 0);
}

/* test_addr_dual - IPv6 first, then IPv4 */
static void test_addr_dual(void **state)
{
    (void)state;
    need_dnsmasq(server);
    struct addr_got a;
    do_addr("v6.dom.example", &a, 5);
    assert_int_equal(a.r.status, 0);
    assert_int_equal(a.r.naddrs, 2);
    addr_is(&a.r, 0, "::1");
    addr_is(&a.r, 1, "127.0.0.12");
}

/* test_addr_single - hosts with only IPv4 or only IPv6, and none */
static void test_addr_single(void **state)
{
    (void)state;
    need_dnsmasq(server);
    struct addr_got a;
    do_addr("mx1.dom.example", &a, 5);
    assert_int_equal(a.r.status, 0);
    assert_int_equal(a.r.naddrs, 1);
    addr_is(&a.r, 0, "127.0.0.11");
    do_addr("v6only.dom.example.", &a, 5);
    assert_int_equal(a.r.status, 0);
    assert_int_equal(a.r.naddrs, 1);
    addr_is(&a.r, 0, "::2");
    do_addr("nosuch.dom.example", &a, 5);
    assert_int_equal(a.r.status, 1);
    assert_int_equal(a.r.naddrs, 0);
    do_addr("-bad name-", &a, 5);
    assert_int_equal(a.r.status, 1);
}

/* test_shutdown_outstanding - mx_shutdown cancels: no callback, nothing leaks */
static void test_shutdown_outstanding(void **state)
{
    (void)state;
    need_dnsmasq(server);
    struct mx_got g[3];
    struct addr_got a[2];
    memset(g, 0, sizeof(g));
    memset(a, 0, sizeof(a));
    mx_lookup("dom.example", mx_cb, &g[0]);
    mx_lookup("nosuch.example", mx_cb, &g[1]);
    mx_lookup("bad name", mx_cb, &g[2]);    /* decided at once, delivered later */
    addr_lookup("v6.dom.example", addr_cb, &a[0]);
    addr_lookup("bad name", addr_cb, &a[1]);
    mx_shutdown();
    int never = 0;
    assert_false(run_until(&never, 1, 1));
    for (int i = 0; i < 3; i++)
        assert_int_equal(g[i].calls, 0);
    assert_int_equal(a[0].calls + a[1].calls, 0);
    /* the resolver can start again afterwards */
    need_dnsmasq(server);
    do_mx("dom.example", &g[0], 5);
    assert_int_equal(g[0].r.status, MX_OK);
}

static struct mx_got late;

/* stop_cb - a callback that shuts the resolver down with other queries in flight */
static void stop_cb(void *arg, const struct mx_result *r)
{
    mx_cb(arg, r);
    mx_shutdown();
    memset(&late, 0, sizeof(late));
    mx_lookup("dom.example", mx_cb, &late);    /* no resolver now: fails, but later */
    assert_int_equal(late.calls, 0);
    sync_calls = 0;
}

/* test_shutdown_in_callback - mx_shutdown from a callback cancels the rest */
static void test_shutdown_in_callback(void **state)
{
    (void)state;
    need_dnsmasq(server);
    struct mx_got g;
    memset(&g, 0, sizeof(g));
    mx_lookup("dom.example", stop_cb, &g);
    mx_lookup("order.example", stop_cb, &g);
    mx_lookup("eq.example", stop_cb, &g);
    assert_true(run_until(&g.calls, 1, 5));
    int never = 0;
    assert_false(run_until(&never, 1, 1));
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.r.status, MX_OK);
    /* the lookup made without a resolver was answered from the loop: a temporary failure */
    assert_int_equal(late.calls, 1);
    assert_int_equal(late.r.status, MX_TEMPFAIL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_mx_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mx_colon_forms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mx_shuffle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mx_no_mx, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mx_null, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mx_nxdomain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mx_bad_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tempfail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_addr_dual, setup, teardown),
        cmocka_unit_test_setup_teardown(test_addr_single, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_outstanding, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_in_callback, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
