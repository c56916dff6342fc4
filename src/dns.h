/* dns.h - asynchronous DNS inside the event loop (libevent evdns) */
#ifndef TERN_DNS_H
#define TERN_DNS_H

#include <sys/socket.h>

struct event_base;
struct dns_req;

/* dns_init - resolver from `nameservers` (LIST; empty: /etc/resolv.conf) */
int dns_init(struct event_base *base, const char *nameservers);
void dns_shutdown(void);

/* dns_client_name - forward-confirmed reverse lookup of sa.  cb gets the
 * host name, or NULL when there is none or it does not map back to sa.
 * Returns a handle for dns_cancel() (NULL if cb was already called). */
typedef void (*dns_name_fn)(void *arg, const char *name);
struct dns_req *dns_client_name(const struct sockaddr *sa, dns_name_fn cb, void *arg);
void dns_cancel(struct dns_req *req);

#endif
