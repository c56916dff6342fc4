/* route.h - where a recipient's mail goes: transport and next hop (Postfix's trivial-rewrite +
 * transport_maps), and the TLS level and SASL credentials for getting it there */
#ifndef TERN_ROUTE_H
#define TERN_ROUTE_H

#include <stddef.h>

#include "smtpc.h" /* enum smtpc_tls */

struct config;

enum route_kind { ROUTE_LOCAL, ROUTE_SMTP, ROUTE_LMTP, ROUTE_ERROR };

struct nexthop {
    char host[256]; /* host name or IP address, without brackets; for a unix socket: its path */
    int port;       /* 0: the default (cfg->smtp_port for smtp; 24 for lmtp over TCP) */
    int mx;         /* 1: look up MX records of host first (smtp, no brackets, not an IP) */
    int unix_sock;  /* lmtp:unix:/path */
};

struct route {
    enum route_kind kind;
    struct nexthop hop; /* SMTP / LMTP */
    char spec[300];     /* the next hop as written ("[relay.example]:587", "example.net",
                           "unix:/run/dovecot/lmtp"), for policy and password lookups; for
                           mail to the domain itself (MX) or an address literal: the domain,
                           lower case, without a trailing dot */
    char key[320];      /* destination key for grouping, concurrency and connection reuse:
                           "smtp:" or "lmtp:" + normalised next hop:
                             MX hop:      "smtp:example.net", or "smtp:example.net:2525" when
                                          the port is not cfg->smtp_port
                             no-MX hop:   "smtp:[relay.example]:25", "smtp:[10.1.2.3]:2525",
                                          "smtp:[2001:db8::1]:25" - always bracketed, the
                                          port always explicit (smtp_port / 24 filled in),
                                          IP addresses in canonical form
                             lmtp:        "lmtp:[127.0.0.1]:24", "lmtp:unix:/run/x" (path as
                                          written)
                           host names lower case without a trailing dot; "local" for
                           ROUTE_LOCAL, "error" for ROUTE_ERROR */
    char error[300];    /* ROUTE_ERROR: "5.7.1 text" (enhanced code, then text); default
                           "5.0.0 mail for this destination is refused" when none given.
                           The code's class may be 4 (a temporary refusal): look at error[0] */
};

/* nexthop_parse - "host", "[host]", "host:port", "[host]:port", "[ipv6]:port" (also
 * "[IPv6:addr]"); lmtp != 0: also "unix:/path" (absolute) and "inet:host:port".  IPv4/IPv6
 * literals never get an MX lookup, nor does any lmtp hop.  IPv6 addresses must be bracketed.
 * Rejects empty host, bad port (0 or > 65535, non-digits), control bytes/space, characters
 * outside [A-Za-z0-9._-] in host names, all-numeric hosts that are not IPv4 addresses,
 * over-long parts (host or path >= 256, whole text >= 300).  Returns 0 or -1. */
int nexthop_parse(const char *s, int lmtp, struct nexthop *out);

struct route_maps; /* transport_maps, smtp_tls_policy_maps, smtp_sasl_password_maps */

/* route_maps_load - read the three files named in cfg (empty name: no map); NULL with
 * "PATH:LINE: reason" in err on a syntax error (unknown transport, bad next hop, bad TLS level,
 * password entry without ':', a destination given twice...) or "PATH: reason" when a file
 * cannot be read.  '#' comments (whole lines only) and blank lines allowed; keys
 * case-insensitive.  Formats:
 *   transport_maps           "destination  transport[:nexthop]"; destination is a domain,
 *                            .domain (subdomains only), * or an address literal
 *   smtp_tls_policy_maps     "destination  level"; destination is a domain, .domain or a
 *                            next hop as written ("[relay.example]:587")
 *   smtp_sasl_password_maps  "nexthop  user:password"; user is up to the first ':', the
 *                            password the rest of the line (trailing white space trimmed) */
struct route_maps *route_maps_load(const struct config *cfg, char *err, size_t errsz);
void route_maps_free(struct route_maps *rm);

/* route_lookup - route for a recipient domain.  Order: transport_maps exact domain, then
 * ".parent" entries walking up (".example.com" matches a.b.example.com but NOT example.com
 * itself), then domains in mydestination -> local_transport ("local" -> ROUTE_LOCAL,
 * "lmtp:..." -> ROUTE_LMTP), then the transport_maps "*" entry, then relayhost (smtp, as parsed
 * by nexthop_parse), then smtp to the domain itself with MX lookup (port 0).
 * An address literal ("[192.0.2.1]", "[IPv6:2001:db8::1]") goes through the same order except
 * the ".parent" walk (an exact transport_maps entry, mydestination, "*" and relayhost still
 * apply, as in Postfix); its last step is smtp to that address, no MX.
 * A transport_maps value "smtp" with no nexthop means smtp to the domain with MX lookup (or to
 * the literal's address); "relay" is a synonym of "smtp"; "local" is ROUTE_LOCAL;
 * "error:5.7.1 text" / "error:text" / "error" is ROUTE_ERROR; "lmtp:unix:/p", "lmtp:host:port",
 * "lmtp:[host]:port", "lmtp:inet:host:port".
 * Domain compared case-insensitively, a trailing dot ignored.  rm may be NULL (no maps).
 * Returns 0 - including ROUTE_ERROR "5.1.2 bad destination domain" for an empty or malformed
 * domain or literal - or -1 (a bad local_transport or relayhost value) with out->kind =
 * ROUTE_ERROR and out->error "4.3.5 configuration error: ..." (temporary: the admin can fix
 * it).  out->error is set whenever out->kind is ROUTE_ERROR. */
int route_lookup(const struct route_maps *rm, const struct config *cfg, const char *domain,
                 struct route *out);

/* route_tls - the TLS level for delivering to route r (for recipient domain `domain`, may be
 * NULL): smtp_tls_policy_maps entry for r->spec (exact, case-insensitive), then for the domain,
 * then ".parent" entries, then cfg->smtp_tls_security_level.  Levels: none, may, encrypt,
 * verify, wrapper (= SMTPC_TLS_WRAPPER), wrapper-verify (sets *wrapper_verify = 1 and returns
 * SMTPC_TLS_WRAPPER) - *wrapper_verify may be NULL and is otherwise set to 0 or 1.
 * LMTP over a unix socket, ROUTE_LOCAL, ROUTE_ERROR: always NONE.
 * An unknown level in cfg: SMTPC_TLS_ENCRYPT (fail safe).
 * NOTE: the answer can depend on the domain while r->key does not (relayhost, transport_maps
 * next hops): a caller reusing a connection for several domains must compare levels. */
enum smtpc_tls route_tls(const struct route_maps *rm, const struct config *cfg, const char *domain,
                         const struct route *r, int *wrapper_verify);

/* route_sasl - credentials for r: smtp_sasl_password_maps entry for r->spec (exact,
 * case-insensitive), then for the bare host of the next hop (lower case, no brackets, port or
 * trailing dot), then for `domain` (may be NULL).  Returns 1 with *user and *pass pointing
 * into rm (valid until route_maps_free), or 0 (also for ROUTE_LOCAL / ROUTE_ERROR, rm NULL). */
int route_sasl(const struct route_maps *rm, const struct route *r, const char *domain,
               const char **user, const char **pass);

/* route_config_check - validate relayhost, local_transport, smtp_tls_security_level and
 * smtp_port of cfg (called by config_load): 0, or -1 with a reason in err that starts with
 * the setting's name ("relayhost: bad next hop \"...\"") */
int route_config_check(const struct config *cfg, char *err, size_t errsz);

#endif
