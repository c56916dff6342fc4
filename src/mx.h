/* mx.h - asynchronous DNS for outbound delivery: MX, then A/AAAA (libunbound in the event loop) */
#ifndef TERN_MX_H
#define TERN_MX_H

#include <stddef.h>
#include <sys/socket.h>

struct event_base;

enum mx_status {
    MX_OK,          /* hosts[] holds the MX hosts in try order */
    MX_NO_MX,       /* no MX record: hosts[] holds the domain itself (RFC 5321 5.1 fallback) */
    MX_NULL_MX,     /* "MX 0 ." (RFC 7505): the domain accepts no mail, bounce with 5.1.10 */
    MX_NXDOMAIN,    /* the domain does not exist: permanent */
    MX_TEMPFAIL,    /* SERVFAIL, timeout, no answer: try again later */
};

#define MX_HOSTS_MAX 32
#define MX_ADDRS_MAX 16

struct mx_result {
    enum mx_status status;
    struct { char name[256]; int pref; } hosts[MX_HOSTS_MAX];
    size_t nhosts;
};

struct addr_result {
    int status;     /* 0 ok, 1 no such host (permanent), 2 temporary failure */
    struct sockaddr_storage addrs[MX_ADDRS_MAX];   /* IPv6 first, then IPv4, port 0 */
    size_t naddrs;
};

/* mx_init - resolver in the event loop; nameservers: dns_nameservers (LIST of ip or ip@port /
 * ip:port; empty: /etc/resolv.conf).  Returns 0 or -1. */
int mx_init(struct event_base *base, const char *nameservers);
void mx_shutdown(void);

/* mx_lookup - MX of domain; hosts sorted by preference, equal preferences in
 * random order; the callback runs later from the event loop, never inside the call */
typedef void (*mx_fn)(void *arg, const struct mx_result *r);
void mx_lookup(const char *domain, mx_fn cb, void *arg);

/* addr_lookup - A and AAAA of host (both queried) */
typedef void (*addr_fn)(void *arg, const struct addr_result *r);
void addr_lookup(const char *host, addr_fn cb, void *arg);

#endif
