/* net.c - address parsing and CIDR matching */
#include "net.h"
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int net_parse_hostport(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[256];
    const char *colon;
    memset(ss, 0, sizeof(*ss));
    if (s[0] == '[') {
        const char *e = strchr(s, ']');
        if (e == NULL || e[1] != ':' || (size_t)(e - s - 1) >= sizeof(host))
            return -1;
        memcpy(host, s + 1, (size_t)(e - s - 1));
        host[e - s - 1] = '\0';
        colon = e + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL || (size_t)(colon - s) >= sizeof(host))
            return -1;
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = '\0';
    }
    char *end;
    if (colon[1] < '0' || colon[1] > '9')
        return -1;
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port < 1 || port > 65535)
        return -1;
    if (s[0] == '[' && host[0] == '\0')
        return -1;
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    if (strcmp(host, "*") == 0 || host[0] == '\0') {
        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = htonl(INADDR_ANY);
        sin->sin_port = htons((uint16_t)port);
        *len = sizeof(*sin);
    } else if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        *len = sizeof(*sin);
    } else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*sin6);
    } else {
        return -1;
    }
    return 0;
}

/* addr_bytes - pointer to the raw address and its family (IPv4-mapped -> IPv4) */
static const unsigned char *addr_bytes(const struct sockaddr *sa, int *family)
{
    if (sa->sa_family == AF_INET) {
        *family = AF_INET;
        return (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a)) {
            *family = AF_INET;
            return a->s6_addr + 12;
        }
        *family = AF_INET6;
        return a->s6_addr;
    }
    *family = 0;
    return NULL;
}

static int prefix_match(const unsigned char *a, const unsigned char *b, int bits)
{
    int whole = bits / 8, rest = bits % 8;
    if (memcmp(a, b, (size_t)whole) != 0)
        return 0;
    if (rest == 0)
        return 1;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

int net_cidr_match(const char *list, const struct sockaddr *sa, char *err, size_t errsz)
{
    int fam;
    const unsigned char *bytes = addr_bytes(sa, &fam);
    const char *p = list;
    char item[256];
    int found = 0;
    while (config_list_next(&p, item, sizeof(item)) > 0) {
        char host[256];
        int bits = -1;
        char *slash = strchr(item, '/');
        if (slash) {
            if (slash[1] < '0' || slash[1] > '9')
                goto bad;
            char *end;
            bits = (int)strtol(slash + 1, &end, 10);
            if (*end != '\0' || slash[1] == '\0')
                goto bad;
            *slash = '\0';
        }
        snprintf(host, sizeof(host), "%s", item);
        size_t hl = strlen(host);
        if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
            memmove(host, host + 1, hl - 2);
            host[hl - 2] = '\0';
        }
        unsigned char net[16];
        int nfam, maxbits;
        if (inet_pton(AF_INET, host, net) == 1) {
            nfam = AF_INET;
            maxbits = 32;
        } else if (inet_pton(AF_INET6, host, net) == 1) {
            nfam = AF_INET6;
            maxbits = 128;
        } else {
            goto bad;
        }
        if (bits < 0)
            bits = maxbits;
        if (bits > maxbits)
            goto bad;
        if (bytes && nfam == fam && prefix_match(bytes, net, bits))
            found = 1;
        continue;
    bad:
        if (err)
            snprintf(err, errsz, "bad network \"%s\"", item);
        return -1;
    }
    return found;
}

void net_addr_text(const struct sockaddr *sa, char *out, size_t outsz)
{
    int fam;
    const unsigned char *b = addr_bytes(sa, &fam);
    if (b == NULL || inet_ntop(fam, b, out, (socklen_t)outsz) == NULL)
        snprintf(out, outsz, "unknown");
}

int net_port(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    if (sa->sa_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    return 0;
}
