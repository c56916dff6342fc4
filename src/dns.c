/* dns.c - forward-confirmed reverse DNS with libevent's evdns */
#include "dns.h"
#include "config.h"
#include "log.h"
#include "xmalloc.h"

#include <arpa/inet.h>
#include <event2/dns.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct dns_req {
    struct evdns_request *pending;  /* the query in flight */
    struct sockaddr_storage sa;
    char name[256];
    dns_name_fn cb;
    void *arg;
};

static struct evdns_base *dnsb;

int dns_init(struct event_base *base, const char *nameservers)
{
    if (nameservers[0] == '\0') {
        dnsb = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
                                        EVDNS_BASE_DISABLE_WHEN_INACTIVE);
        if (dnsb == NULL) /* no resolv.conf: lookups just fail */
            dnsb = evdns_base_new(base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    } else {
        dnsb = evdns_base_new(base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
        const char *p = nameservers;
        char item[128];
        while (dnsb && config_list_next(&p, item, sizeof(item)) > 0)
            if (evdns_base_nameserver_ip_add(dnsb, item) != 0)
                log_warnx("dns_nameservers: bad server \"%s\"", item);
    }
    if (dnsb == NULL)
        return -1;
    evdns_base_set_option(dnsb, "timeout:", "3");
    evdns_base_set_option(dnsb, "attempts:", "2");
    return 0;
}

void dns_shutdown(void)
{
    if (dnsb)
        evdns_base_free(dnsb, 1);
    dnsb = NULL;
}

static void finish(struct dns_req *r, const char *name)
{
    r->pending = NULL;
    r->cb(r->arg, name);
    free(r);
}

/* forward_cb - does the PTR name map back to the client address? */
static void forward_cb(int result, char type, int count, int ttl, void *addrs, void *arg)
{
    (void)ttl;
    struct dns_req *r = arg;
    if (result == DNS_ERR_CANCEL) {
        free(r);
        return;
    }
    int ok = 0;
    if (result == DNS_ERR_NONE && type == DNS_IPv4_A && r->sa.ss_family == AF_INET) {
        const struct in_addr *want = &((struct sockaddr_in *)&r->sa)->sin_addr;
        for (int i = 0; i < count && !ok; i++)
            ok = memcmp(&((struct in_addr *)addrs)[i], want, sizeof(*want)) == 0;
    } else if (result == DNS_ERR_NONE && type == DNS_IPv6_AAAA && r->sa.ss_family == AF_INET6) {
        const struct in6_addr *want = &((struct sockaddr_in6 *)&r->sa)->sin6_addr;
        for (int i = 0; i < count && !ok; i++)
            ok = memcmp(&((struct in6_addr *)addrs)[i], want, sizeof(*want)) == 0;
    }
    finish(r, ok ? r->name : NULL);
}

static int name_ok(const char *n)
{
    if (*n == '\0' || strlen(n) > 253)
        return 0;
    for (; *n; n++)
        if (!((*n >= 'a' && *n <= 'z') || (*n >= 'A' && *n <= 'Z') || (*n >= '0' && *n <= '9') ||
              *n == '-' || *n == '.' || *n == '_'))
            return 0;
    return 1;
}

static void ptr_cb(int result, char type, int count, int ttl, void *addrs, void *arg)
{
    (void)ttl;
    struct dns_req *r = arg;
    if (result == DNS_ERR_CANCEL) {
        free(r);
        return;
    }
    if (result != DNS_ERR_NONE || type != DNS_PTR || count < 1 || !name_ok(*(char **)addrs)) {
        finish(r, NULL);
        return;
    }
    snprintf(r->name, sizeof(r->name), "%s", *(char **)addrs);
    if (r->sa.ss_family == AF_INET)
        r->pending = evdns_base_resolve_ipv4(dnsb, r->name, DNS_QUERY_NO_SEARCH, forward_cb, r);
    else
        r->pending = evdns_base_resolve_ipv6(dnsb, r->name, DNS_QUERY_NO_SEARCH, forward_cb, r);
    if (r->pending == NULL)
        finish(r, NULL);
}

struct dns_req *dns_client_name(const struct sockaddr *sa, dns_name_fn cb, void *arg)
{
    if (dnsb == NULL || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)) {
        cb(arg, NULL);
        return NULL;
    }
    struct dns_req *r = xcalloc(1, sizeof(*r));
    memcpy(&r->sa, sa, sa->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
    r->cb = cb;
    r->arg = arg;
    if (sa->sa_family == AF_INET)
        r->pending = evdns_base_resolve_reverse(dnsb, &((const struct sockaddr_in *)sa)->sin_addr,
                                                DNS_QUERY_NO_SEARCH, ptr_cb, r);
    else
        r->pending = evdns_base_resolve_reverse_ipv6(dnsb, &((const struct sockaddr_in6 *)sa)->sin6_addr,
                                                     DNS_QUERY_NO_SEARCH, ptr_cb, r);
    if (r->pending == NULL) {
        free(r);
        cb(arg, NULL);
        return NULL;
    }
    return r;
}

/* dns_cancel - the session went away: its callback will not run */
void dns_cancel(struct dns_req *r)
{
    if (r && r->pending)
        evdns_cancel_request(dnsb, r->pending); /* the callback frees r with DNS_ERR_CANCEL */
}
