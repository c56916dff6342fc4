/* net.h - socket addresses: parsing listen addresses, CIDR matching, text form */
#ifndef TERN_NET_H
#define TERN_NET_H

#include <stddef.h>
#include <sys/socket.h>

/* net_parse_hostport - "1.2.3.4:25", "[::1]:25", "*:25" (any IPv4) */
int net_parse_hostport(const char *s, struct sockaddr_storage *ss, socklen_t *len);

/* net_cidr_match - does sa fall in one of the LIST entries ("127.0.0.0/8",
 * "[::1]/128", "192.0.2.7", "[2001:db8::]/32")?  Returns 1/0, -1 on a
 * malformed entry (err names it). */
int net_cidr_match(const char *list, const struct sockaddr *sa, char *err, size_t errsz);

/* net_addr_text - numeric address (no port, no brackets); IPv4-mapped shown as IPv4 */
void net_addr_text(const struct sockaddr *sa, char *out, size_t outsz);
int net_port(const struct sockaddr *sa);

#endif
