/* fuzz_smtpc_reply.c - libFuzzer target: smtpc_reply_parse (pipelined, as a client reads) and smtpc_ehlo_parse
 *
 * Besides letting the sanitizers look for out-of-bounds reads (OpenSMTPD
 * CVE-2020-8794), it aborts when a result breaks an invariant: a DONE reply
 * consumed 1..len octets, has a 200..599 code, at least one line, a
 * NUL-terminated esc of the reply's class and text; MORE and ERROR consume
 * nothing; every proper prefix of a DONE reply is MORE.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtpc_reply.h"

/* check - abort (reported by libFuzzer as a crash) when an invariant fails */
static void check(int ok)
{
    if (!ok)
        abort();
}

/* check_reply - the fields of a DONE reply */
static void check_reply(const struct smtpc_reply *r, size_t used, size_t len)
{
    check(used > 0 && used <= len);
    check(r->code >= 200 && r->code <= 599);
    check(r->lines >= 1 && r->lines <= SMTPC_LINES_MAX);
    check(memchr(r->esc, '\0', sizeof(r->esc)) != NULL);
    check(r->esc[0] == '\0' || r->esc[0] == (char)('0' + r->code / 100));
    check(memchr(r->text, '\0', sizeof(r->text)) != NULL);
}

/* check_ehlo - the EHLO result is self-consistent */
static void check_ehlo(const struct smtpc_reply *r)
{
    struct smtpc_ext ext;
    smtpc_ehlo_parse(r, &ext);
    check((ext.flags & ~0x1ffu) == 0);
    check(ext.size == 0 || (ext.flags & SMTPC_EXT_SIZE));
    check(!(ext.auth_plain || ext.auth_login) || (ext.flags & SMTPC_EXT_AUTH));
}

/* check_prefix - a proper prefix of a DONE reply is MORE (sampled: the last octet only) */
static void check_prefix(const char *p, size_t used)
{
    struct smtpc_reply r;
    size_t u = 1;
    char *copy = malloc(used - 1 ? used - 1 : 1);
    memcpy(copy, p, used - 1);
    check(smtpc_reply_parse(copy, used - 1, &r, &u) == SMTPC_MORE && u == 0);
    free(copy);
}

/* LLVMFuzzerTestOneInput - parse replies one after another, as a pipelining client does */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* an exact-size copy so ASan catches any read past len */
    char *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    size_t pos = 0;
    for (;;) {
        struct smtpc_reply r;
        size_t used = 12345;
        enum smtpc_parse st = smtpc_reply_parse(buf + pos, size - pos, &r, &used);
        if (st != SMTPC_DONE) {
            check(st == SMTPC_MORE || st == SMTPC_ERROR);
            check(used == 0);
            break;
        }
        check_reply(&r, used, size - pos);
        check_prefix(buf + pos, used);
        check_ehlo(&r);
        pos += used;
    }
    free(buf);
    return 0;
}
