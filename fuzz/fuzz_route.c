/* fuzz_route.c - libFuzzer target: nexthop_parse (SMTP and LMTP forms) and route_lookup
 *
 * The next hops come from the configuration and map files, and route_lookup
 * sees recipient domains from the network.  Invariants: an accepted next hop
 * has a clean, bounded host, a port in range, and re-parses the same way; a
 * route always has a key and an error route a reason.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "route.h"

static void check(int ok)
{
    if (!ok)
        abort();
}

static void clean(const char *s, size_t size)
{
    const char *nul = memchr(s, '\0', size);
    check(nul != NULL);
    for (; s < nul; s++)
        check((unsigned char)*s >= 0x20 && *s != 0x7f);
}

static struct config *cfg;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char in[600];
    if (size >= sizeof(in))
        return 0;
    memcpy(in, data, size);
    in[size] = '\0';
    if (cfg == NULL) {
        char err[256];
        char *ov[] = {"mydestination=local.example", "relayhost="};
        cfg = config_load(NULL, ov, 2, err, sizeof(err));
        check(cfg != NULL);
    }
    for (int lmtp = 0; lmtp <= 1; lmtp++) {
        struct nexthop h, h2;
        if (nexthop_parse(in, lmtp, &h) == 0) {
            clean(h.host, sizeof(h.host));
            check(h.host[0] != '\0');
            check(h.port >= 0 && h.port <= 65535);
            check(!(h.mx && (h.unix_sock || lmtp)));
            /* the same text parses the same way again */
            check(nexthop_parse(in, lmtp, &h2) == 0 && strcmp(h.host, h2.host) == 0 &&
                  h.port == h2.port && h.mx == h2.mx);
        }
    }
    struct route r;
    memset(&r, 0, sizeof(r));
    route_lookup(NULL, cfg, in, &r);
    clean(r.key, sizeof(r.key));
    clean(r.spec, sizeof(r.spec));
    if (r.kind == ROUTE_ERROR)
        check(r.error[0] != '\0');
    else
        check(r.key[0] != '\0');
    if (r.kind == ROUTE_SMTP || r.kind == ROUTE_LMTP)
        clean(r.hop.host, sizeof(r.hop.host));
    return 0;
}
