/* fuzz_addr.c - libFuzzer target: addr_parse_path (all flag combinations) and xtext
 *
 * Besides letting the sanitizers look for memory errors, it aborts when a
 * result breaks an invariant: an accepted path must re-parse to the same
 * fields, carry a valid domain, and never contain controls.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"

/* check - abort (reported by libFuzzer as a crash) when an invariant fails */
static void check(int ok)
{
    if (!ok)
        abort();
}

/* clean - the NUL-terminated field fits its buffer and has no control or (unless utf8) 8-bit byte */
static void clean(const char *s, size_t size, int utf8)
{
    const char *nul = memchr(s, '\0', size);
    check(nul != NULL);
    for (; s < nul; s++) {
        unsigned char c = (unsigned char)*s;
        check(c >= 0x20 && c != 0x7f);
        check(utf8 || c < 0x80);
    }
}

/* same_fields - two results describe the same mailbox */
static void same_fields(const struct addr *a, const struct addr *b)
{
    check(strcmp(a->addr, b->addr) == 0 && strcmp(a->local, b->local) == 0);
    check(strcmp(a->domain, b->domain) == 0);
    check(a->is_null == b->is_null && a->quoted == b->quoted);
    check(a->literal == b->literal && a->utf8 == b->utf8);
}

/* check_domain - the domain is valid and is exactly what follows the last '@' of addr */
static void check_domain(const struct addr *a, int flags)
{
    size_t al = strlen(a->addr), dl = strlen(a->domain);

    if (a->domain[0] == '\0') { /* only <postmaster> in RCPT */
        check(!(flags & ADDR_F_MAIL) && strlen(a->addr) == 10 && strchr(a->addr, '@') == NULL);
        return;
    }
    check(addr_domain_valid(a->domain, flags & ADDR_F_UTF8));
    check(al > dl && a->addr[al - dl - 1] == '@' && strcmp(a->addr + al - dl, a->domain) == 0);
    check(a->literal == (a->domain[0] == '['));
}

/* check_ok - invariants of an accepted path */
static void check_ok(const char *buf, size_t len, int flags, const struct addr *a, const char *rest)
{
    int utf8 = flags & ADDR_F_UTF8;
    struct addr b;
    char again[ADDR_PATH_MAX + 8];
    const char *r2;

    check(rest >= buf && rest <= buf + len && (*rest == '\0' || *rest == ' '));
    clean(a->addr, sizeof(a->addr), utf8);
    clean(a->local, sizeof(a->local), utf8);
    clean(a->domain, sizeof(a->domain), utf8);
    check(utf8 || !a->utf8);
    if (a->is_null) {
        check((flags & ADDR_F_MAIL) && a->addr[0] == '\0' && a->domain[0] == '\0');
        return;
    }
    check(strlen(a->addr) <= ADDR_PATH_MAX - 2 && a->local[0] != '\0');
    check_domain(a, flags);
    /* the mailbox as written re-parses, strictly, to the same result */
    snprintf(again, sizeof(again), "<%s>", a->addr);
    check(addr_parse_path(again, flags | ADDR_F_STRICT, &b, &r2) == ADDR_OK);
    check(*r2 == '\0');
    same_fields(a, &b);
}

/* parse_all - every flag combination; strict acceptance implies lenient acceptance */
static void parse_all(const char *buf, size_t len)
{
    struct addr res[8];
    enum addr_status st[8];

    for (int flags = 0; flags < 8; flags++) {
        const char *rest = NULL;
        st[flags] = addr_parse_path(buf, flags, &res[flags], &rest);
        check(addr_status_text(st[flags]) != NULL);
        if (st[flags] == ADDR_OK)
            check_ok(buf, len, flags, &res[flags], rest);
        else
            check(rest == buf && res[flags].addr[0] == '\0');
    }
    for (int flags = 0; flags < 8; flags++)
        if ((flags & ADDR_F_STRICT) && st[flags] == ADDR_OK) {
            check(st[flags & ~ADDR_F_STRICT] == ADDR_OK);
            same_fields(&res[flags], &res[flags & ~ADDR_F_STRICT]);
        }
}

/* xtext_all - decode/encode round trips on the raw bytes */
static void xtext_all(const uint8_t *data, size_t size)
{
    static char dec[4096], enc[3 * 4096 + 1], dec2[4096];
    long n = xtext_decode((const char *)data, size, dec, sizeof(dec));
    int has_ctrl = 0;

    check((n >= 0) == xtext_valid((const char *)data, size));
    if (n >= 0) {
        for (long i = 0; i < n; i++)
            check((unsigned char)dec[i] >= 0x20 && (unsigned char)dec[i] != 0x7f);
        long e = xtext_encode(dec, (size_t)n, enc, sizeof(enc));
        check(e >= 0 && xtext_decode(enc, (size_t)e, dec2, sizeof(dec2)) == n);
        check(memcmp(dec, dec2, (size_t)n) == 0);
    }
    if (size > 4000)
        return;
    long e = xtext_encode((const char *)data, size, enc, sizeof(enc));
    check(e >= 0);
    for (size_t i = 0; i < size; i++)
        has_ctrl |= data[i] < 0x20 || data[i] == 0x7f;
    n = xtext_decode(enc, (size_t)e, dec, sizeof(dec));
    check(has_ctrl ? n == -1 : (n == (long)size && memcmp(dec, data, size) == 0));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* LLVMFuzzerTestOneInput - feed one input (as a NUL-terminated copy) to every parser here */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);

    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    parse_all(buf, strlen(buf));
    addr_domain_valid(buf, 0);
    addr_domain_valid(buf, 1);
    addr_utf8_valid((const char *)data, size);
    xtext_all(data, size);
    free(buf);
    return 0;
}
